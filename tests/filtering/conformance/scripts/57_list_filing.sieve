# A common filter: file list mail into Lists/<list id>.
require ["fileinto", "variables", "mailbox"];
if header :matches "list-id" "*<*.lists.example.org>*" {
    fileinto :create "Lists/${2}";
} elsif exists "list-id" {
    fileinto "Lists";
}
