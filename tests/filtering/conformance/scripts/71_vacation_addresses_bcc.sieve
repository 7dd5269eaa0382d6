# RFC 5230 4.5: reply only when one of the user's addresses is a recipient in the header;
# :addresses names the other ones (the bcc message is addressed to team@example.org only).
require "vacation";
vacation :addresses ["team@example.org"] :subject "Away" "The team is away.";
