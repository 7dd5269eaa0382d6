"""The IMAP protocol core, sans-IO: bytes in, commands out; responses in, bytes out."""
