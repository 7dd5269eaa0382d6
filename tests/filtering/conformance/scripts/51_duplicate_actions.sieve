# RFC 5228 2.10.3: the same fileinto or keep twice is taken once.
require "fileinto";
fileinto "Twice";
fileinto "Twice";
keep;
keep;
redirect "x@example.net";
redirect "x@example.net";
