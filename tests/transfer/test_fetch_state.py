"""The fetch state file: the mod-sequences and local UIDs it keeps beside the UIDs, and files
written before it kept them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postoffice.transfer import fetch_changes
from postoffice.transfer.fetch_state import FetchState, FolderState, format_uid_map, parse_uid_map


def test_uid_map_runs_round_trip() -> None:
    mapping = {1: 10, 2: 11, 3: 12, 7: 20, 8: 30}
    assert format_uid_map(mapping) == [[1, 10, 3], [7, 20, 1], [8, 30, 1]]
    assert parse_uid_map(format_uid_map(mapping)) == mapping
    with pytest.raises(ValueError):
        parse_uid_map([[1, 2]])


def test_a_state_file_from_before_modseqs_loads_and_new_fields_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "Mail.fetch-state.json"
    path.write_text(json.dumps({"version": 1, "sources": {"imap://bob@h:143": {
        "folders": {"INBOX": {"uidvalidity": 7, "uids": "1:3,5"}}, "uidls": [], "gmail_ids": []}}}))
    old = FetchState.load(path).source("imap://bob@h:143").folder("INBOX")
    assert old == FolderState(uidvalidity=7, uids={1, 2, 3, 5})
    assert old.highestmodseq is None and old.uidnext is None and not old.vanished and not old.local_uids

    state = FetchState(path)
    folder = state.source("imap://bob@h:143").folder("INBOX")
    folder.uidvalidity, folder.uids, folder.highestmodseq, folder.uidnext = 7, {1, 2, 3}, 12345678901, 4
    folder.vanished, folder.local_uids, folder.local_uidvalidity = {2}, {1: 5, 3: 7}, 99
    state.save()
    assert FetchState.load(path).source("imap://bob@h:143").folder("INBOX") == folder


class _Enabled:
    """What qresync_params reads of a client: the extensions it enabled."""

    enabled = frozenset({"CONDSTORE", "QRESYNC"})


@pytest.mark.parametrize("copies", [1, fetch_changes.QRESYNC_MAX_COPIES, fetch_changes.QRESYNC_MAX_COPIES + 1])
def test_qresync_is_asked_only_up_to_a_bounded_number_of_copies(copies: int) -> None:
    """A QRESYNC answer is held whole; a bigger folder reads its changes by CHANGEDSINCE ranges."""
    state = FolderState(uidvalidity=9, uids=set(range(1, copies + 2)), vanished={1}, highestmodseq=40)
    params = fetch_changes.qresync_params(_Enabled(), state, gmail=False)  # type: ignore[arg-type]
    if copies > fetch_changes.QRESYNC_MAX_COPIES:
        assert params is None
    else:
        assert params == (9, 40, copies + 1)
    assert fetch_changes.qresync_params(_Enabled(), state, gmail=True) is None  # type: ignore[arg-type]
