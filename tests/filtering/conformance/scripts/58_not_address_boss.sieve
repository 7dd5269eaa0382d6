# The issue's own example: only mail from the boss stays in the inbox.
require "fileinto";
if not address :is "from" "boss@example.org" {
    fileinto "Other";
}
