# RFC 5229 3: ${...} in strings, escapes, and names that are not variables.
require ["variables", "fileinto"];
set "x" "X";
set "msg" "${x}${x}-\${x}-${x.y}-${ x }-$${x}";
fileinto "${msg}";
