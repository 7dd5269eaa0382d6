# RFC 5235 3.2: spamtestplus and :percent.
require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "50" {
    fileinto "Spammy";
}
if spamtest :percent :matches "*" {
    fileinto "Percent-${1}";
}
