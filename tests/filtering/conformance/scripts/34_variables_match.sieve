# RFC 5229 3.2: match variables from :matches.
require ["variables", "fileinto"];
if header :matches "subject" "* *" {
    fileinto "First-${1}";
}
if address :matches "from" "*@*" {
    set "domain" "${2}";
    fileinto "From-${domain}";
}
