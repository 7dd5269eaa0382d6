"""Certificates from an ACME certificate authority (RFC 8555), such as Let's Encrypt.

- jws.py: the account key (ES256) and the signed requests (RFC 7515, RFC 7638 thumbprints)
- client.py: the protocol, blocking (urllib): directory, nonces, account, order, challenge,
  finalize, download; run it in a thread
- challenge_answers.py: key authorizations and the TLS-ALPN-01 certificate (RFC 8737)
- issuance.py: one certificate for a set of names, start to finish; failures explained
- renewal.py: the task inside `serve` that obtains, renews, writes and retries
"""
