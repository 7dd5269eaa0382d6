# RFC 5429: a reject reason from a multi-line string.
require "reject";
if not exists "list-id" {
    reject text:
Sorry, this mailbox is closed.
Write to the office instead.
.
;
}
