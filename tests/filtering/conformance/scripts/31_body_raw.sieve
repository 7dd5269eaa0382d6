# RFC 5173 5.1: body :raw sees the undecoded body (base64 of the attachment).
require ["body", "imap4flags"];
if body :raw :contains "JVBERi0xLjQ" { addflag "pdf-raw"; }
if body :raw :contains "Revenue" { addflag "revenue"; }
if body :contains "JVBERi0xLjQ" { addflag "pdf-text"; }
keep;
