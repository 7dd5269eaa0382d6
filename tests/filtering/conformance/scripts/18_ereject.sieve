# RFC 5429 2.1: ereject. Pigeonhole 0.5.19 has no ereject: the reference runs this script with
# reject instead (the same decision; only how the refusal travels differs).
require "ereject";
if address :domain :is "from" "example.de" {
    ereject "Bitte nicht.";
}
