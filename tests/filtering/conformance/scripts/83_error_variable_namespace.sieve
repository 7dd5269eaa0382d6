# A compile error: set into a namespace no extension defines (RFC 5229 3).
require "variables";
set "x.y" "value";
keep;
