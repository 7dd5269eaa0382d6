# RFC 6609 3.2: stop in an included script ends the whole run.
require ["include", "fileinto"];
include :personal "spamrules";
fileinto "NotJunk";
