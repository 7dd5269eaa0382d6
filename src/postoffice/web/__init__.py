"""The HTTP(S) listener: client autoconfiguration, the MTA-STS policy and ACME HTTP-01
challenges (routes.py), served by uvicorn inside `serve` (server.py)."""
