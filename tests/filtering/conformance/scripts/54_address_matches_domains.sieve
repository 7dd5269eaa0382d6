# RFC 5228 5.1: address :matches with wildcards across several headers.
require ["fileinto", "variables"];
if address :all :matches ["from", "sender", "reply-to"] "*@*.example" {
    fileinto "Freemail-${2}";
}
if address :domain :matches "from" "*.example.org" {
    fileinto "SubdomainOrg";
}
