# RFC 5230 4.6 / 5: without :subject the reply's subject is derived from the original.
require "vacation";
vacation "I am away.";
