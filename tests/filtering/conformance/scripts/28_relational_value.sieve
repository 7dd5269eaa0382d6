# RFC 5231: :value with gt/le/ne, numeric and casemap.
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "4" {
    fileinto "Prio";
}
if header :value "ge" :comparator "i;ascii-casemap" "subject" "r" {
    fileinto "SubjectAfterR";
}
if header :value "ne" :comparator "i;ascii-numeric" "subject" "5" {
    fileinto "SubjectNotFive";
}
