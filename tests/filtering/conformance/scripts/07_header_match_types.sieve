# RFC 5228 2.7.1: :is, :contains, :matches on header; the default is :is.
require ["fileinto", "imap4flags"];
if header "subject" "Meeting tomorrow at 10" { addflag "is-default"; }
if header :is "subject" "meeting TOMORROW at 10" { addflag "is-casemap"; }
if header :contains "from" "Alice" { addflag "contains"; }
if header :matches "subject" "*digest, issue ??" { addflag "matches"; }
keep;
