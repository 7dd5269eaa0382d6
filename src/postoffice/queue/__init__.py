"""Outbound delivery: the queue runner, the SMTP client session, routing and bounces (DESIGN §2).

`outcomes` holds the types every part shares: what one attempt to hand a message to the next
hop found, per recipient, so the runner can retry, bounce or finish each one on its own.
"""
