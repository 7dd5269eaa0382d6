"""Reruns of `postoffice fetch` with CONDSTORE/QRESYNC (RFC 7162), the real CLI against
postoffice's own IMAP server and against Dovecot on loopback: flag changes at the source reach
the copies (Maildir file names, a local account's store seen over IMAP), a folder with nothing
new costs no FETCH, and a message the source expunges is counted while its copy stays.

Commands are watched through a recording proxy (tests/transfer/imap_proxy.py); flags are read
with imaplib and from Maildir file names directly, not through the code under test."""

from __future__ import annotations

import imaplib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from dovecot_kit import PASSWORD as DOVECOT_PASSWORD
from dovecot_kit import running_dovecot
from fetch_kit import fill
from imap_proxy import RecordingProxy

from cli_run import po
from live_server import PASSWORD, LiveServer

FOLDERS = {"INBOX": 10, "Work": 6}
Flags = dict[str, frozenset[str]]  # by Subject


@dataclass(frozen=True)
class Account:
    user: str
    password: str
    port: int

    def url(self, port: int | None = None) -> str:
        return f"imap://{quote(self.user)}@127.0.0.1:{port or self.port}?tls=none"

    def login(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(self.user, self.password)
        return imap

    def store(self, folder: str, uids: str, change: str, flags: str) -> None:
        imap = self.login()
        try:
            assert imap.select(folder)[0] == "OK"
            assert imap.uid("STORE", uids, change, flags)[0] == "OK"
        finally:
            imap.logout()

    def expunge(self, folder: str, uids: str) -> None:
        self.store(folder, uids, "+FLAGS", "(\\Deleted)")
        imap = self.login()
        try:
            imap.select(folder)
            assert imap.expunge()[0] == "OK"
        finally:
            imap.logout()


class Sources:
    """Fresh accounts, each holding FOLDERS, on one postoffice or one Dovecot."""

    def __init__(self, kind: str, new_user: Callable[[], tuple[str, str]], port: int) -> None:
        self.kind = kind
        self.new_user = new_user
        self.port = port

    def account(self) -> Account:
        user, password = self.new_user()
        account = Account(user, password, self.port)
        imap = account.login()
        for folder, count in FOLDERS.items():
            fill(imap, folder, count)
        imap.logout()
        return account


@pytest.fixture(scope="module", params=["postoffice", "dovecot"])
def sources(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    numbers = itertools.count()
    if request.param == "postoffice":
        live = LiveServer(tmp_path_factory.mktemp("source") / "data", ["imap"]).start()

        def new_user() -> tuple[str, str]:
            address = f"src{next(numbers)}@example.test"
            live.add_user(address)
            return address, PASSWORD

        try:
            yield Sources("postoffice", new_user, live.ports["imap"])
        finally:
            live.stop()
        return
    users = [f"src{n}" for n in range(24)]  # one per test that asks for an account
    with running_dovecot(users) as dovecot:
        yield Sources("dovecot", lambda: (users[next(numbers)], DOVECOT_PASSWORD), dovecot.imap_port)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A postoffice server whose users are `local:` destinations, read back over IMAP."""
    live = LiveServer(tmp_path_factory.mktemp("dest") / "data", ["imap"]).start()
    try:
        yield live
    finally:
        live.stop()


_local_numbers = itertools.count()


def local_user(live: LiveServer) -> str:
    address = f"copy{next(_local_numbers)}@example.test"
    live.add_user(address)
    return address


def fetch(account: Account, to: str, *, port: int | None = None, data: Path | None = None,
          check: bool = True, honour_file_modes: bool = False) -> dict[str, object]:
    result = po("fetch", account.url(port), "--to", to, "--json", data=data, check=check, timeout=300,
                env={"POSTOFFICE_FROM_PASSWORD": account.password}, honour_file_modes=honour_file_modes)
    if not check and result.returncode != 0:
        return {"exit": result.returncode, "stderr": result.stderr}
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# -- reading flags, independently of the code under test -------------------------------------------

_SUBJECT = re.compile(rb"^Subject: (.*?)\r?$", re.M | re.I)
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def imap_flags(port: int, user: str, password: str, folder: str) -> Flags:
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, password)
    try:
        assert imap.select(folder, readonly=True)[0] == "OK"
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
    finally:
        imap.logout()
    found: Flags = {}
    for item in data:
        if isinstance(item, tuple):
            flags = _FLAGS.search(item[0])
            subject = _SUBJECT.search(item[1])
            assert flags is not None and subject is not None, item
            found[subject[1].decode()] = frozenset(f for f in flags[1].decode().split() if f != "\\Recent")
    return found


def source_flags(account: Account, folder: str) -> Flags:
    return imap_flags(account.port, account.user, account.password, folder)


_LETTERS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def maildir_flags(root: Path, folder: str) -> Flags:
    """Flags from each file's name (`:2,` letters; a-z named by dovecot-keywords)."""
    directory = root if folder == "INBOX" else root / f".{folder}"
    keywords: dict[str, str] = {}
    if (directory / "dovecot-keywords").exists():
        for line in (directory / "dovecot-keywords").read_text().splitlines():
            number, name = line.split(" ", 1)
            keywords[chr(ord("a") + int(number))] = name
    found: Flags = {}
    for sub in ("cur", "new"):
        for path in (directory / sub).iterdir():
            letters = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            subject = _SUBJECT.search(path.read_bytes())
            assert subject is not None
            found[subject[1].decode()] = frozenset(_LETTERS.get(c) or keywords[c] for c in letters)
    return found


def change_flags(account: Account) -> None:
    """+\\Seen on some, +\\Flagged $Label1 on others, -\\Seen on one, in INBOX only."""
    account.store("INBOX", "1,4", "+FLAGS", "(\\Seen)")
    account.store("INBOX", "3,5", "+FLAGS", "(\\Flagged $Label1)")
    account.store("INBOX", "2", "-FLAGS", "(\\Seen)")


# -- the tests -------------------------------------------------------------------------------------


def test_flag_changes_at_the_source_reach_maildir_and_local_copies_on_rerun(
    sources: Sources, local: LiveServer, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    copy = local_user(local)
    assert fetch(account, f"maildir:{dest}")["copied"] == sum(FOLDERS.values())
    assert fetch(account, f"local:{copy}", data=local.data_dir)["copied"] == sum(FOLDERS.values())
    before = source_flags(account, "INBOX")
    assert maildir_flags(dest, "INBOX") == before
    modseqs = local_modseqs(local, copy)

    change_flags(account)
    after = source_flags(account, "INBOX")
    changed = {s for s in after if after[s] != before[s]}
    assert len(changed) == 5  # each change of change_flags changes something

    again = fetch(account, f"maildir:{dest}")
    assert again["flags_updated"] == len(changed) and again["copied"] == 0, again
    assert maildir_flags(dest, "INBOX") == after
    assert maildir_flags(dest, "Work") == source_flags(account, "Work")

    into_local = fetch(account, f"local:{copy}", data=local.data_dir)
    assert into_local["flags_updated"] == len(changed) and into_local["copied"] == 0, into_local
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "INBOX") == after
    # IMAP clients of the copy see the change: each changed message has a new MODSEQ.
    now = local_modseqs(local, copy)
    assert {s for s in now if now[s] != modseqs[s]} == changed


def local_modseqs(live: LiveServer, user: str) -> dict[str, int]:
    imap = imaplib.IMAP4("127.0.0.1", live.ports["imap"])
    imap.login(user, PASSWORD)
    try:
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("FETCH", "1:*", "(MODSEQ BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
    finally:
        imap.logout()
    out: dict[str, int] = {}
    for item in data:
        if isinstance(item, tuple):
            modseq = re.search(rb"MODSEQ \((\d+)\)", item[0])
            subject = _SUBJECT.search(item[1])
            assert modseq is not None and subject is not None
            out[subject[1].decode()] = int(modseq[1])
    return out


def test_rerun_with_nothing_changed_sends_no_fetch_and_a_change_comes_with_the_select(
    sources: Sources, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    with RecordingProxy(account.port) as proxy:  # one port: the state knows the source by it
        fetch(account, f"maildir:{dest}", port=proxy.port)
        proxy.commands.clear()
        quiet = fetch(account, f"maildir:{dest}", port=proxy.port)
        assert quiet["unchanged_folders"] == quiet["folders"] >= len(FOLDERS) and quiet["copied"] == 0, quiet
        assert quiet["skipped_duplicates"] == sum(FOLDERS.values())
        for folder in FOLDERS:
            sent = proxy.by_folder()[folder]
            assert not [c for c in sent if c.upper().startswith(("UID FETCH", "UID SEARCH"))], sent

        account.store("Work", "2", "+FLAGS", "(\\Answered)")
        proxy.commands.clear()
        result = fetch(account, f"maildir:{dest}", port=proxy.port)
    assert result["unchanged_folders"] == result["folders"] - 1 and result["flags_updated"] == 1, result
    inbox, work = proxy.by_folder()["INBOX"], proxy.by_folder()["Work"]
    assert not [c for c in inbox if c.upper().startswith("UID FETCH")], inbox
    assert "(QRESYNC (" in work[0], work  # the change came with the SELECT: no CHANGEDSINCE
    assert not [c for c in work if "CHANGEDSINCE" in c.upper()], work
    assert maildir_flags(dest, "Work") == source_flags(account, "Work")


def test_without_qresync_flag_changes_come_by_changedsince(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    with RecordingProxy(account.port, hide=("QRESYNC",)) as proxy:
        fetch(account, f"maildir:{dest}", port=proxy.port)
        change_flags(account)
        result = fetch(account, f"maildir:{dest}", port=proxy.port)
    assert result["flags_updated"] == 5, result
    assert not [c for c in proxy.commands if "QRESYNC" in c.upper()]
    assert [c for c in proxy.by_folder()["INBOX"] if "(CHANGEDSINCE " in c.upper()]
    assert maildir_flags(dest, "INBOX") == source_flags(account, "INBOX")


def test_expunged_at_the_source_is_counted_once_and_the_copy_is_kept(
    sources: Sources, local: LiveServer, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    copy = local_user(local)
    with RecordingProxy(account.port) as proxy:
        for to, data in ((f"maildir:{dest}", None), (f"local:{copy}", local.data_dir)):
            fetch(account, to, port=proxy.port, data=data)
        account.expunge("INBOX", "2,7")
        for to, data in ((f"maildir:{dest}", None), (f"local:{copy}", local.data_dir)):
            proxy.commands.clear()
            result = fetch(account, to, port=proxy.port, data=data)
            assert result["removed_at_source"] == 2 and result["copied"] == 0, (to, result)
            assert any("removed at the source" in w for w in result["warnings"]), result  # type: ignore[attr-defined]
            assert "(QRESYNC (" in proxy.by_folder()["INBOX"][0]
            assert fetch(account, to, port=proxy.port, data=data)["removed_at_source"] == 0  # counted once
    assert len(maildir_flags(dest, "INBOX")) == FOLDERS["INBOX"]  # the copies stay
    assert len(local.messages(copy, "INBOX")) == FOLDERS["INBOX"]


def test_a_malformed_vanished_is_reported_and_the_folder_takes_the_changedsince_path(
    sources: Sources, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"

    def bad_vanished(command: str) -> bytes | None:
        return b"* VANISHED (EARLIER) 0:*\r\n" if "(QRESYNC (" in command else None

    with RecordingProxy(account.port) as proxy:
        fetch(account, f"maildir:{dest}", port=proxy.port)
        change_flags(account)
        proxy.inject = bad_vanished
        proxy.commands.clear()
        result = fetch(account, f"maildir:{dest}", port=proxy.port)
    assert result["failed"] == 0 and result["flags_updated"] == 5, result
    assert any("VANISHED" in w and "CHANGEDSINCE" in w for w in result["warnings"]), result  # type: ignore[attr-defined]
    assert [c for c in proxy.by_folder()["INBOX"] if "(CHANGEDSINCE " in c.upper()]
    assert maildir_flags(dest, "INBOX") == source_flags(account, "INBOX")


def test_mbox_destination_says_flag_changes_are_not_carried(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "mboxes"
    first = fetch(account, f"mbox:{dest}")
    assert "mbox destination: flag changes at the source are not carried" not in first["warnings"]  # type: ignore[operator]
    change_flags(account)
    result = fetch(account, f"mbox:{dest}")
    assert "mbox destination: flag changes at the source are not carried" in result["warnings"], result  # type: ignore[operator]
    assert result["flags_updated"] == 0 and result["copied"] == 0


MODSEQ_KEYS = ("highestmodseq", "uidnext", "vanished", "local_uids", "local_uidvalidity")  # none before modseqs


def edit_folders(state_file: Path, edit: Callable[[str, dict[str, object]], None]) -> None:
    """Rewrite a fetch state file with `edit(folder name, folder state)` applied to each folder."""
    state = json.loads(state_file.read_text())
    for source in state["sources"].values():
        for name, folder in source["folders"].items():
            edit(name, folder)
    state_file.write_text(json.dumps(state))


def rerun_with_edited_state(account: Account, to: str, state_file: Path,
                            edit: Callable[[str, dict[str, object]], None], data: Path | None = None) -> dict[str, object]:
    """The state file as an older or interrupted run left it (`edit`), five flag changes at
    the source, and the rerun's summary."""
    edit_folders(state_file, edit)
    change_flags(account)
    return fetch(account, to, data=data)


def local_state_file(local: LiveServer, address: str) -> Path:
    return local.data_dir / "fetch" / f"{address}.fetch-state.json"


def test_a_state_file_from_before_modseqs_reads_every_flag_once(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    fetch(account, f"maildir:{dest}")
    def as_before_modseqs(_: str, folder: dict[str, object]) -> None:
        assert "highestmodseq" in folder
        for key in MODSEQ_KEYS:
            folder.pop(key, None)

    result = rerun_with_edited_state(account, f"maildir:{dest}", tmp_path / "Mail.fetch-state.json", as_before_modseqs)
    assert result["flags_updated"] == 5 and result["copied"] == 0, result
    assert maildir_flags(dest, "INBOX") == source_flags(account, "INBOX")


def test_flags_that_cannot_be_written_are_carried_by_the_next_run(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    fetch(account, f"maildir:{dest}")
    state_file = tmp_path / "Mail.fetch-state.json"
    recorded = json.loads(state_file.read_text())
    change_flags(account)
    (dest / "cur").chmod(0o555)  # the renames fail
    try:
        failed = fetch(account, f"maildir:{dest}", check=False, honour_file_modes=True)
    finally:
        (dest / "cur").chmod(0o700)
    assert failed.get("exit") == 1 and "cannot be changed" in str(failed["stderr"]), failed
    now = json.loads(state_file.read_text())
    modseq = [f.get("highestmodseq") for s in now["sources"].values() for n, f in s["folders"].items() if n == "INBOX"]
    was = [f.get("highestmodseq") for s in recorded["sources"].values() for n, f in s["folders"].items() if n == "INBOX"]
    assert modseq == was  # not moved: the changes are not at the destination
    result = fetch(account, f"maildir:{dest}")
    assert result["flags_updated"] == 5, result
    assert maildir_flags(dest, "INBOX") == source_flags(account, "INBOX")


def test_local_copies_stored_but_not_recorded_are_matched_by_content(
    sources: Sources, local: LiveServer, tmp_path: Path
) -> None:
    account = sources.account()
    copy = local_user(local)
    fetch(account, f"local:{copy}", data=local.data_dir)
    # As if a run was killed after the store committed and before the state was written.
    def unrecorded(name: str, folder: dict[str, object]) -> None:
        if name == "INBOX":
            folder["uids"] = ""
            folder.pop("local_uids")
            folder.pop("uidnext")

    result = rerun_with_edited_state(account, f"local:{copy}", local_state_file(local, copy), unrecorded,
                                     data=local.data_dir)
    assert result["copied"] == 0, result
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "INBOX") == source_flags(account, "INBOX")
    account.store("INBOX", "6", "+FLAGS", "(\\Flagged)")  # and the next change finds its copy
    assert fetch(account, f"local:{copy}", data=local.data_dir)["flags_updated"] == 1
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "INBOX") == source_flags(account, "INBOX")


def plain_fetch(account: Account, to: str, *, port: int | None = None) -> str:
    """The summary a person reads (no --json), from stderr."""
    result = po("fetch", account.url(port), "--to", to, timeout=300, env={"POSTOFFICE_FROM_PASSWORD": account.password})
    return result.stderr


def test_plain_summary_names_flag_updates_removals_and_unchanged_folders(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    first = plain_fetch(account, f"maildir:{dest}")
    assert "flags updated" not in first and "removed at the source" not in first and "unchanged" not in first, first
    change_flags(account)  # UIDs 1 to 5 of INBOX
    account.expunge("INBOX", "7")
    rerun = plain_fetch(account, f"maildir:{dest}")
    assert "5 message(s) copied earlier had their flags updated to the source's." in rerun, rerun
    assert "1 message(s) copied earlier were removed at the source; their copies here are kept." in rerun, rerun
    unchanged = re.search(r"^(\d+) folder\(s\) unchanged at the source since the last run\.$", rerun, re.M)
    assert unchanged is not None and int(unchanged[1]) >= 1, rerun  # Work, at least


@pytest.mark.parametrize("answer", [b"NO [CANNOT] not for this mailbox", b"BAD QRESYNC parameter not understood"])
def test_a_refused_qresync_examine_falls_back_to_a_plain_one_and_changedsince(
    sources: Sources, tmp_path: Path, answer: bytes
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    with RecordingProxy(account.port) as proxy:
        fetch(account, f"maildir:{dest}", port=proxy.port)
        change_flags(account)
        account.expunge("INBOX", "7")
        proxy.refuse = lambda command: answer if "(QRESYNC (" in command else None
        proxy.commands.clear()
        result = fetch(account, f"maildir:{dest}", port=proxy.port)
    assert result["failed"] == 0 and result["flags_updated"] == 5 and result["removed_at_source"] == 1, result
    refused = [w for w in result["warnings"] if "refused EXAMINE with QRESYNC" in w]  # type: ignore[attr-defined]
    assert len(refused) == 1 and answer.split()[0].decode() in refused[0], result  # once, with the reason
    assert sum("(QRESYNC (" in c for c in proxy.commands) == 1, proxy.commands  # not asked again per folder
    inbox = proxy.by_folder()["INBOX"]
    assert "(QRESYNC (" in inbox[0] and inbox[1].upper().startswith("EXAMINE") and "QRESYNC" not in inbox[1], inbox
    assert [c for c in inbox if "(CHANGEDSINCE " in c.upper()], inbox
    at_source, copies = source_flags(account, "INBOX"), maildir_flags(dest, "INBOX")
    assert {s: f for s, f in copies.items() if s in at_source} == at_source and len(copies) == FOLDERS["INBOX"]


def test_without_condstore_an_expunge_is_counted_once_over_two_reruns(sources: Sources, tmp_path: Path) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    with RecordingProxy(account.port, hide=("CONDSTORE", "QRESYNC")) as proxy:
        fetch(account, f"maildir:{dest}", port=proxy.port)
        account.expunge("INBOX", "3")
        proxy.commands.clear()
        counted = [fetch(account, f"maildir:{dest}", port=proxy.port)["removed_at_source"] for _ in range(2)]
    assert counted == [1, 0], counted
    assert not [c for c in proxy.commands if "QRESYNC" in c.upper() or "CHANGEDSINCE" in c.upper()]
    assert len(maildir_flags(dest, "INBOX")) == FOLDERS["INBOX"]  # the copy stays


def test_removals_counted_by_a_run_that_then_loses_its_connection_are_not_counted_again(
    sources: Sources, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    with RecordingProxy(account.port, hide=("QRESYNC",)) as proxy:
        fetch(account, f"maildir:{dest}", port=proxy.port)
        change_flags(account)  # so INBOX's flags are asked for with CHANGEDSINCE, after the count
        account.expunge("INBOX", "7")
        proxy.drop = lambda command: "(CHANGEDSINCE " in command.upper()
        lost = fetch(account, f"maildir:{dest}", port=proxy.port, check=False)
        assert lost.get("exit") == 1, lost
        proxy.drop = None
        result = fetch(account, f"maildir:{dest}", port=proxy.port)
    assert result["removed_at_source"] == 0 and result["flags_updated"] == 5 and result["failed"] == 0, result


def test_deleted_at_the_source_is_not_carried_onto_the_copies(
    sources: Sources, local: LiveServer, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    copy = local_user(local)
    fetch(account, f"maildir:{dest}")
    fetch(account, f"local:{copy}", data=local.data_dir)
    # The first step of a two-step delete; an EXPUNGE at the copy must not then destroy it.
    account.store("INBOX", "2,3", "+FLAGS", "(\\Deleted)")
    account.store("INBOX", "3", "+FLAGS", "(\\Flagged)")  # other changes still arrive
    at_source = source_flags(account, "INBOX")
    assert sum("\\Deleted" in f for f in at_source.values()) == 2
    kept = {s: f - {"\\Deleted"} for s, f in at_source.items()}
    fetch(account, f"maildir:{dest}")
    fetch(account, f"local:{copy}", data=local.data_dir)
    assert maildir_flags(dest, "INBOX") == kept
    assert not [p for p in (dest / "cur").iterdir() if "T" in p.name.split(":2,", 1)[1]]
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "INBOX") == kept


def test_a_local_state_file_from_before_modseqs_finds_its_copies_and_reads_every_flag_once(
    sources: Sources, local: LiveServer, tmp_path: Path
) -> None:
    account = sources.account()
    copy = local_user(local)
    fetch(account, f"local:{copy}", data=local.data_dir)
    def as_before_modseqs(_: str, folder: dict[str, object]) -> None:
        assert "highestmodseq" in folder and ("local_uids" in folder or not folder["uids"])
        for key in MODSEQ_KEYS:
            folder.pop(key, None)

    result = rerun_with_edited_state(account, f"local:{copy}", local_state_file(local, copy), as_before_modseqs,
                                     data=local.data_dir)
    assert result["flags_updated"] == 5 and result["copied"] == 0, result
    assert not [w for w in result["warnings"] if "no copy here" in w], result  # type: ignore[attr-defined]
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "INBOX") == source_flags(account, "INBOX")
    account.store("Work", "2", "+FLAGS", "(\\Answered)")  # and the next change finds its copy too
    again = fetch(account, f"local:{copy}", data=local.data_dir)
    assert again["flags_updated"] == 1 and not again["warnings"], again
    assert imap_flags(local.ports["imap"], copy, PASSWORD, "Work") == source_flags(account, "Work")


def recreate(account: Account, folder: str) -> None:
    """DELETE and CREATE the folder at the source and APPEND its messages again: the same
    mail under a new UIDVALIDITY."""
    imap = account.login()
    try:
        imap.select(folder, readonly=True)
        old_validity = imap.response("UIDVALIDITY")[1]
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        assert typ == "OK"
        messages = [(_FLAGS.search(i[0]), i[1]) for i in data if isinstance(i, tuple)]
        imap.close()
        assert imap.delete(folder)[0] == "OK" and imap.create(folder)[0] == "OK"
        for flags, raw in messages:
            assert flags is not None
            kept = " ".join(f for f in flags[1].decode().split() if f != "\\Recent")
            assert imap.append(folder, f"({kept})", None, raw)[0] == "OK"
        imap.select(folder, readonly=True)
        assert imap.response("UIDVALIDITY")[1] != old_validity
    finally:
        imap.logout()


def test_maildir_copies_matched_by_content_after_a_uidvalidity_change_get_later_flag_changes(
    sources: Sources, tmp_path: Path
) -> None:
    account = sources.account()
    dest = tmp_path / "Mail"
    fetch(account, f"maildir:{dest}")
    recreate(account, "Work")
    rematched = fetch(account, f"maildir:{dest}")
    assert rematched["copied"] == 0, rematched
    assert len(maildir_flags(dest, "Work")) == FOLDERS["Work"]
    before = source_flags(account, "Work")
    account.store("Work", "1:*", "+FLAGS", "(\\Flagged)")
    after = source_flags(account, "Work")
    changed = [s for s in after if after[s] != before[s]]
    assert len(changed) >= 2
    result = fetch(account, f"maildir:{dest}")
    assert result["flags_updated"] == len(changed) and result["copied"] == 0, result
    assert not [w for w in result["warnings"] if "no copy here" in w], result  # type: ignore[attr-defined]
    assert maildir_flags(dest, "Work") == after
    assert all("F" in p.name.split(":2,", 1)[1] for p in (dest / ".Work" / "cur").iterdir())
