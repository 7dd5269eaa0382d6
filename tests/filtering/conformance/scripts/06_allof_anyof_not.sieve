# RFC 5228 5.2, 5.3, 5.8: allof, anyof, not, nested.
require "fileinto";
if allof (exists "date", not exists "list-id", anyof (header :contains "subject" "budget",
                                                       header :contains "subject" "report")) {
    fileinto "Finance";
}
if anyof (not address :is "to" "bob@example.com", false) {
    fileinto "NotDirect";
}
