# A compile error: capability names are case-sensitive (RFC 5228 3.2 compares with i;octet).
require "FILEINTO";
fileinto "Work";
