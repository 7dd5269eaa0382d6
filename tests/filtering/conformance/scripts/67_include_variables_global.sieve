# RFC 6609 3.4 with RFC 5229: a global variable shared with an included script.
require ["include", "variables"];
global "folder";
set "folder" "FromInclude";
include :personal "usevar";
