# RFC 5230 4.2-4.5: :from, :addresses, :handle.
require "vacation";
vacation :from "bob@example.com" :addresses ["bob@example.com", "robert@example.com"]
         :handle "trip-2026" :subject "On a trip" "Back on the 14th.";
