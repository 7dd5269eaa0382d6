# RFC 5228 2.7: a list of header names and a list of keys: any pair matches.
require "fileinto";
if header :contains ["to", "cc"] ["carol", "things@"] {
    fileinto "CarolOrThings";
}
if header :is ["x-a", "x-b"] ["1", "2"] {
    fileinto "Never";
}
