"""The diagnostics tests reuse the outbound tests' TLS peers (tests/queue/tls_peers.py: a test CA,
the MTA-STS policy server on 127.0.0.83:443)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queue"))
