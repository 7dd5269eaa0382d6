# RFC 5228 4.2: redirect cancels the implicit keep.
if address :domain :is "from" "example.org" {
    redirect "archive@example.net";
}
