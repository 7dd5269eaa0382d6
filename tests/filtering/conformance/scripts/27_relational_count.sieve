# RFC 5231: :count on header and address.
require ["relational", "comparator-i;ascii-numeric", "imap4flags"];
if header :count "ge" :comparator "i;ascii-numeric" "received" "2" { addflag "two-hops"; }
if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "2" { addflag "two-recipients"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-none" "0" { addflag "none"; }
keep;
