require ["fileinto", "include"];
if exists "list-id" {
    fileinto "Lists";
    return;
}
if header :contains "subject" "Auto:" {
    fileinto "Robots";
}
