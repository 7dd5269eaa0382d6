# RFC 5429 2.2: reject with a reason; it cancels the implicit keep.
require "reject";
if header :contains "subject" "report" {
    reject "No reports to this address, please.";
}
