"""SMTP and LMTP: the protocol core (proto/), the connection driver, policies and listeners."""
