# RFC 5232 4, 5.4: hasflag with match types, and flags in a variable.
require ["imap4flags", "variables", "fileinto"];
set "myflags" "";
addflag "myflags" ["$Important", "\\Answered"];
if hasflag :contains "myflags" "Important" { fileinto "HasImportant"; }
if hasflag :is "\\Answered" { fileinto "NeverInternal"; }
addflag "\\Answered";
if hasflag :is "\\answered" { fileinto :flags "${myflags}" "Answered"; }
