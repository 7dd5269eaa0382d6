# RFC 5260 4: the date test on the Date header.
require ["date", "relational", "fileinto"];
if date :value "ge" "date" "year" "2026" { fileinto "Recent"; }
if date :is "date" "weekday" "5" { fileinto "Friday"; }
if date :is "date" "month" "12" { fileinto "December"; }
if date :matches "date" "date" "2026-12-0*" { fileinto "EarlyDecember"; }
