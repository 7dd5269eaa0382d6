# RFC 5228 2.7.3, RFC 4790: i;octet is case-sensitive, i;ascii-casemap is not, i;ascii-numeric.
require ["comparator-i;ascii-numeric", "imap4flags"];
if header :is :comparator "i;octet" "subject" "meeting tomorrow at 10" { addflag "octet-lower"; }
if header :is :comparator "i;octet" "subject" "Meeting tomorrow at 10" { addflag "octet-exact"; }
if header :contains :comparator "i;ascii-casemap" "subject" "TOMORROW" { addflag "casemap"; }
if header :is :comparator "i;ascii-numeric" "x-priority" "003" { addflag "numeric-eq"; }
if header :is :comparator "i;ascii-numeric" "x-missing-priority" "3" { addflag "numeric-missing"; }
keep;
