# A compile error in Pigeonhole: the address test takes address header fields only
# (RFC 5228 5.1: "header fields containing addresses"); Subject is not one.
if address :contains "subject" "budget" {
    discard;
}
