"""Judging incoming mail beyond authentication (DESIGN §2): DNS blocklists (dnsbl.py) and the
transparent spam score (score.py: the sum; score_rules.py, attachments.py, uri_blocklists.py:
the rules; score_weights.py: their names and default weights; spam_stage.py: the port-25
stage); the filtering pipeline, Sieve, greylisting and junk learning to come."""
