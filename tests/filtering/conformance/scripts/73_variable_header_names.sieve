# RFC 5229 3: variables in the header-name argument of tests.
require ["variables", "fileinto"];
set "field" "list-id";
if exists "${field}" { fileinto "Via-${field}"; }
set "h" "subject";
if header :contains "${h}" "budget" { fileinto "Var-Budget"; }
