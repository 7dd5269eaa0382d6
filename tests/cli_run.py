"""Run the real `postoffice` command as a user would, for the CLI tests."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path


def po(*args: str, data: Path | None = None, stdin: str | None = None, check: bool = True,
       env: dict[str, str] | None = None, timeout: float = 120, honour_file_modes: bool = False,
       ) -> subprocess.CompletedProcess[str]:
    """`postoffice ARGS --data DATA`; fails the test on a non-zero exit when `check`, and on a
    run longer than `timeout` seconds (a hang is a failure, not a stuck test run).
    `honour_file_modes`: even as root, the command cannot read what its mode forbids."""
    cmd = [sys.executable, "-m", "postoffice", *args]
    if data is not None:
        cmd += ["--data", str(data)]
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=full_env,
                            preexec_fn=_drop_read_override if honour_file_modes else None)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _drop_read_override() -> None:
    """In the child before exec: remove CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from the
    capability bounding set (prctl PR_CAPBSET_DROP = 24), so root's process obeys file modes."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
