# RFC 5173 5.2: body :content restricted to content types.
require ["body", "fileinto"];
if body :content "text/html" :contains "<b>quarterly" {
    fileinto "HtmlReport";
}
if body :content "text" :contains "Revenue" {
    fileinto "TextRevenue";
}
if body :content "application/pdf" :contains "secret" {
    fileinto "PdfSecret";
}
