# RFC 5429 2.2: reject conflicts with fileinto/keep: a runtime error, the implicit keep files.
require ["reject", "fileinto"];
fileinto "Work";
reject "Not wanted.";
