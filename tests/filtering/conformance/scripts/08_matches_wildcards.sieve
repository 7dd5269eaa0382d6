# RFC 5228 2.7.1: * and ? wildcards, escaped wildcards, empty key.
require ["fileinto", "imap4flags"];
if header :matches "subject" "*report*" { addflag "star"; }
if header :matches "subject" "?eeting*" { addflag "question"; }
if header :matches "subject" "*\\?*" { addflag "literal-question"; }
if header :matches "message-id" "<*@*>" { addflag "msgid"; }
if header :matches "x-missing" "*" { addflag "missing-star"; }
if header :matches "subject" "" { addflag "empty"; }
keep;
