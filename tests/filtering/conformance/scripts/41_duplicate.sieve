# RFC 7352: duplicate on Message-ID (first delivery: not a duplicate) and on a header.
require ["duplicate", "fileinto"];
if duplicate {
    fileinto "Duplicates";
}
if duplicate :header "subject" :seconds 3600 {
    fileinto "SameSubject";
}
