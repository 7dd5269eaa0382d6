# RFC 3894 3: fileinto :copy alone leaves the implicit keep in place.
require ["fileinto", "copy"];
fileinto :copy "Archive";
