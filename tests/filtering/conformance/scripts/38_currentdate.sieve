# RFC 5260 5: currentdate (compared against fixed bounds so the result does not move).
require ["date", "relational", "fileinto"];
if currentdate :value "ge" "year" "2024" { fileinto "After2024"; }
if currentdate :value "lt" "year" "2000" { fileinto "Before2000"; }
if currentdate :matches "julian" "*" { fileinto "HasJulian"; }
