# A compile error: require of an unknown extension (RFC 5228 3.2).
require ["fileinto", "x-no-such-extension"];
keep;
