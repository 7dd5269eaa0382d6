# RFC 4790 9.1: i;ascii-numeric treats a value without leading digits as positive infinity.
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" {
    fileinto "InfiniteSubject";
}
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "10" {
    fileinto "LowPriorityNumber";
}
