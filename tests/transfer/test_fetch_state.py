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


LIMIT = fetch_changes.QRESYNC_MAX_UID


@pytest.mark.parametrize(("copied", "uidnext", "asked"), [
    ({2, 3}, None, True),
    ({2, LIMIT}, LIMIT + 1, True),  # UIDs up to the limit
    ({2, LIMIT + 1}, None, False),  # a copy past it
    ({2, 3}, LIMIT + 2, False),  # few copies (a --max-bytes backup), a big folder: its answer is big
])
def test_qresync_is_asked_only_of_folders_whose_uids_stay_under_a_bound(
    copied: set[int], uidnext: int | None, asked: bool
) -> None:
    """A QRESYNC answer names every changed message of the folder and is held whole; a bigger
    folder reads its changes by CHANGEDSINCE ranges of copied UIDs."""
    state = FolderState(uidvalidity=9, uids=copied | {1}, vanished={1}, highestmodseq=40, uidnext=uidnext)
    params = fetch_changes.qresync_params(_Enabled(), state, gmail=False)  # type: ignore[arg-type]
    assert params == ((9, 40, max(copied)) if asked else None)
    assert fetch_changes.qresync_params(_Enabled(), state, gmail=True) is None  # type: ignore[arg-type]
