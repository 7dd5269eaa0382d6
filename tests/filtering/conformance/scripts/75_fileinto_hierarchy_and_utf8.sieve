# RFC 5228 4.1, RFC 5490: mailbox names are UTF-8 and may name a hierarchy.
require ["fileinto", "mailbox"];
if address :domain :is "from" "example.de" {
    fileinto :create "Freunde/Grüße";
} else {
    fileinto :create "Work.Archive";
}
