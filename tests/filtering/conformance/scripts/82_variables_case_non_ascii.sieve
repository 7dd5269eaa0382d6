# RFC 5229 4.1: :upper/:lower on a subject with non-ASCII letters.
require ["variables", "fileinto"];
if header :matches "subject" "*" {
    set :upper "up" "${1}";
    set :lowerfirst "lf" "${1}";
    fileinto "${up}|${lf}";
}
