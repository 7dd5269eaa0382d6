# RFC 5232 5.x: :flags on fileinto and keep replaces the internal variable for that action.
require ["imap4flags", "fileinto"];
addflag "\\Seen";
fileinto :flags ["\\Flagged", "$Work"] "Work";
keep :flags "";
fileinto "Plain";
