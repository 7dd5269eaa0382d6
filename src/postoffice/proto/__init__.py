"""What every sans-IO protocol core shares (SMTP, IMAP, POP3 and, later, the clients).

Like the cores themselves it does no I/O and imports nothing from `postoffice.net`: bytes in,
values out, so each core can be tested byte for byte and driven by any transport.
"""
