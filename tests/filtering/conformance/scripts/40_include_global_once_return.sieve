# RFC 6609 3.2, 3.3: include :global, :once, return.
require ["include", "fileinto"];
include :global :once "lists";
include :global :once "lists";
if header :contains "subject" "Meeting" {
    fileinto "Meetings";
    return;
}
fileinto "AfterReturn";
