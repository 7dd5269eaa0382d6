# RFC 5228 3.1: nested if blocks with elsif chains.
require ["fileinto", "imap4flags"];
if exists "from" {
    if address :domain :is "from" "example.org" {
        if header :contains "subject" "Auto" {
            fileinto "OrgAuto";
        } elsif header :contains "subject" "Meeting" {
            addflag "\\Flagged";
            fileinto "OrgMeeting";
        } else {
            fileinto "OrgOther";
        }
    } else {
        keep;
    }
}
