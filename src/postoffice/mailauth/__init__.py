"""Mail authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and ARC (RFC 8617).

Each module exposes a few functions that take an injected resolver and return typed results
(DESIGN §2); ``dkimkeys`` manages the signing keys kept in the data directory.
"""
