# RFC 5228 5.6, 5.10: true and false.
require "fileinto";
if true { fileinto "Yes"; }
if false { fileinto "No"; }
if not false { fileinto "AlsoYes"; }
