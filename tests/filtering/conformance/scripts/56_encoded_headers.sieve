# RFC 5228 2.7.2: header values are compared after RFC 2047 decoding (UTF-8).
require ["fileinto", "imap4flags"];
if header :contains "subject" "Grüße" { addflag "gruesse"; }
if header :contains "from" "Müller" { addflag "mueller"; }
if address :is "from" "juergen@example.de" { addflag "address"; }
if header :is :comparator "i;octet" "subject" "Grüße aus Köln" { addflag "exact"; }
keep;
