# RFC 5235 3.3: virustest; no X-Virus-Scan header means "not tested" (0).
require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if virustest :value "eq" :comparator "i;ascii-numeric" "0" {
    fileinto "Unscanned";
} elsif virustest :value "ge" :comparator "i;ascii-numeric" "4" {
    fileinto "Infected";
}
