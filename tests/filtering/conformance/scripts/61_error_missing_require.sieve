# A compile error: fileinto without require (line 3).
keep;
fileinto "Work";
