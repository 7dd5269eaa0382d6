# RFC 5490: create a missing mailbox only when needed.
require ["mailbox", "fileinto"];
if not mailboxexists "Later" {
    fileinto :create "Later";
}
