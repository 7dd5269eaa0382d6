# RFC 5228 3.1: if / elsif / else, the first true branch only.
require "fileinto";
if address :domain :is "from" "example.org" {
    fileinto "Org";
} elsif address :domain :is "from" ["example.net", "example.de"] {
    fileinto "NetDe";
} else {
    fileinto "Rest";
}
