# RFC 5229 with RFC 5230: the reply's subject and text from variables.
require ["vacation", "variables"];
set "until" "14 December";
if header :matches "subject" "*" {
    set "orig" "${1}";
}
vacation :days 1 :subject "Away until ${until}" "Your mail about \"${orig}\" will be read after ${until}.";
