# RFC 5183: environment items (the values Pigeonhole's sieve-test reports for its own context
# are given to ours too) and an unknown item.
require ["environment", "fileinto", "variables"];
if environment :is "location" "MS" { fileinto "AtMS"; }
if environment :matches "phase" "*" { fileinto "Phase-${1}"; }
if environment :is "vnd.unknown.item" "" { fileinto "UnknownEmpty"; }
if environment :contains "domain" "" { fileinto "HasDomain"; }
