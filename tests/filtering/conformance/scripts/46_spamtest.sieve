# RFC 5235 3.2: spamtest (1 .. 10) from the X-Spam-Score the filter put in.
require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "8" {
    fileinto "Junk";
} elsif spamtest :value "ge" :comparator "i;ascii-numeric" "4" {
    fileinto "Maybe";
} elsif spamtest :value "eq" :comparator "i;ascii-numeric" "0" {
    fileinto "Untested";
}
