# RFC 5293 4: addheader at the top and with :last.
require ["editheader", "variables"];
addheader "X-Filtered" "yes";
if header :matches "from" "*" {
    addheader :last "X-Original-From" "${1}";
}
