# RFC 5233: :user and :detail on envelope and address.
require ["subaddress", "envelope", "fileinto", "variables"];
if envelope :detail "to" "work" {
    fileinto "Work";
} elsif address :detail :matches "to" "*" {
    fileinto "Detail-${1}";
}
if envelope :user :is "to" "bob" {
    fileinto "UserBob";
}
