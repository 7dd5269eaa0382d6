# RFC 5232 5: setflag, addflag, removeflag on the internal variable; keep uses it.
require "imap4flags";
setflag "\\Seen";
addflag ["\\Flagged", "$Work", "\\Seen"];
removeflag "\\Seen";
addflag "$a $b";
removeflag "$b";
keep;
