# RFC 3894: :copy on redirect and fileinto keeps the implicit keep.
require ["copy", "fileinto"];
redirect :copy "boss@example.net";
if header :contains "subject" "report" {
    fileinto :copy "Copies";
}
