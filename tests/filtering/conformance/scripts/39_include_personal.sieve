# RFC 6609: include a personal script.
require ["include", "fileinto"];
include :personal "spamrules";
if header :contains "subject" "digest" {
    fileinto "Digests";
}
