"""The fetch state file: the mod-sequences and local UIDs it keeps beside the UIDs, and files
written before it kept them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
