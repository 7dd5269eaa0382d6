# A compile error: redirect needs a valid address (RFC 5228 4.2); the literal is checked.
if true {
    redirect "not an address";
}
