# RFC 5228 4.1 and RFC 5490 3.2: fileinto :create into a hierarchy.
require ["fileinto", "mailbox"];
fileinto :create "Projects/Budget";
