# RFC 5260 4.2: the iso8601 date part, in UTC and in the original zone.
require ["date", "variables", "fileinto"];
if date :zone "+0000" :matches "date" "iso8601" "*" {
    fileinto "ISO-${1}";
}
if date :originalzone :matches "date" "std11" "*" {
    fileinto "STD11-${1}";
}
