# RFC 5229 5: the string test; unknown variables are empty.
require ["variables", "fileinto", "relational"];
set "who" "alice";
if string :is "${unknown}" "" { fileinto "Empty"; }
if string :contains ["${who}", "x"] "lic" { fileinto "Contains"; }
if string :count "eq" ["a", "", "b"] "2" { fileinto "CountTwo"; }
