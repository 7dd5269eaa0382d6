"""IMAP command handlers, one module per family."""
