# RFC 5228 2.10.3: keep and fileinto "INBOX" are the same delivery, made once.
require ["fileinto", "imap4flags"];
fileinto :flags "\\Seen" "INBOX";
keep :flags "$Kept";
fileinto "inbox";
