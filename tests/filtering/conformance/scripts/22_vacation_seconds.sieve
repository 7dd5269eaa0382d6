# RFC 6131: vacation :seconds.
require ["vacation", "vacation-seconds"];
if not header :contains "subject" "digest" {
    vacation :seconds 7200 :subject "In a meeting" "I am in a meeting for two hours.";
}
