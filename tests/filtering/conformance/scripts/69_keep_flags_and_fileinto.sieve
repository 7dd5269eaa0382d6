# RFC 5232: flags given to keep, and different flags on fileinto.
require ["imap4flags", "fileinto"];
keep :flags ["\\Seen", "$Kept"];
fileinto :flags "\\Flagged" "Flagged";
