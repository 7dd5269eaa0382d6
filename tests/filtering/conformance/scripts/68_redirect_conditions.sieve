# RFC 5228 4.2: redirect per condition, keep beside it.
require "fileinto";
if header :contains "subject" ["report", "budget"] {
    redirect "finance@example.net";
    keep;
}
if exists "auto-submitted" {
    redirect "robots@example.net";
}
