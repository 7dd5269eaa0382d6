# RFC 5228 5.4: the envelope test on from and to.
require ["envelope", "fileinto"];
if envelope :all :is "from" "alice@example.org" {
    fileinto "FromAlice";
} elsif envelope :domain :is "from" "lists.example.org" {
    fileinto "ListEnvelope";
} elsif envelope :localpart :matches "to" "bob*" {
    fileinto "ToBob";
}
