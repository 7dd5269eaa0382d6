# RFC 5228 2.7.4, 5.1: :all, :localpart, :domain on address lists (To and Cc).
require "imap4flags";
if address :localpart :is ["to", "cc"] "carol" { addflag "carol"; }
if address :domain :is "from" "EXAMPLE.ORG" { addflag "org"; }
if address :all :is "to" "bob@example.com" { addflag "bob"; }
if address :all :contains "from" "example" { addflag "example"; }
if address :localpart :matches "from" "*e" { addflag "ends-e"; }
