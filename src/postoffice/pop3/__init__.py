"""POP3 (RFC 1939): the sans-IO protocol core (``proto``) and the maildrop model (``maildrop``)."""
