# RFC 5230: vacation with :days and :subject.
require "vacation";
vacation :days 3 :subject "Away until Monday" "I am away until Monday; I will answer then.";
