# RFC 5490 3.1: mailboxexists (Archive and Lists exist; Nowhere does not).
require ["mailbox", "fileinto"];
if mailboxexists "Archive" {
    fileinto "Archive";
}
if mailboxexists ["Lists", "Nowhere"] {
    fileinto "Both";
}
