# RFC 5228 3.3: stop ends the script; later actions are not taken.
require "fileinto";
if header :contains "subject" "Meeting" {
    fileinto "Work";
    stop;
}
fileinto "Other";
