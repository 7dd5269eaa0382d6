# RFC 5173: body :text (the text parts, decoded).
require ["body", "fileinto"];
if body :text :contains "budget" {
    fileinto "Budget";
} elsif body :text :contains "quarterly report" {
    fileinto "Reports";
}
