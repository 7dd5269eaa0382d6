"""Judging incoming mail beyond authentication: DNS blocklists (dnsbl.py) now; the filtering
pipeline, Sieve, greylisting and scores later (DESIGN §2)."""
