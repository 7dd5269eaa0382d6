# RFC 5260 4.1, 4.2: :zone and :originalzone.
require ["date", "fileinto", "variables"];
if date :zone "+0000" :matches "date" "hour" "*" { fileinto "UTC-${1}"; }
if date :originalzone :matches "date" "zone" "*" { fileinto "Zone-${1}"; }
if date :zone "-0500" :matches "date" "date" "*" { fileinto "NY-${1}"; }
