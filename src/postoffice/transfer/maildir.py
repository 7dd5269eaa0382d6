"""Maildir and Maildir++ trees: read every folder's messages, write messages durably.

Maildir (https://cr.yp.to/proto/maildir.html) keeps one message per file in `cur/` and `new/`;
a file is written in `tmp/` and renamed into place, so a reader never sees half a message. The
file name is a unique name plus an info suffix, `:2,` then the flag letters in ASCII order:
P (passed: $Forwarded), R (replied: \\Answered), S (seen), T (trashed: \\Deleted), D (draft),
F (flagged). Lower-case letters a-z are Dovecot keywords, named by the folder's
`dovecot-keywords` file ("0 $Junk" names the letter a); without that file they are dropped,
since nothing says what they mean. `;` is accepted in place of `:` (the separator mbsync and
Windows tools use where `:` cannot be in a file name).

Folders. Maildir++ (Courier, Dovecot's default layout) keeps every folder in the root as a
directory named with a leading dot and dots between levels: `.Sent` is "Sent", `.Archive.2024`
is "Archive/2024". Names on disk are in IMAP's modified UTF-7 (RFC 3501 §5.1.3) and decoded
(`.Entw&APw-rfe` is "Entwürfe"; a name that is not valid modified UTF-7 is taken as it is);
`\\NN` hex escapes (Dovecot's listescape plugin, used for a "." inside a name) are decoded, and
a lone `\\` level is an empty one (see `names`: the writer escapes every name that way).
Plain nested directories (Dovecot LAYOUT=fs, mbsync "SubFolders Verbatim", offlineimap) and
mbsync's "SubFolders Legacy" `Folder/.Sub` are read too. The root's own cur/ and new/ are INBOX,
and so is a top-level `INBOX/` folder (mbsync's `Inbox ~/Mail/INBOX`, offlineimap): a root
without cur/ and new/ is accepted when folders below it have them.

Reading. A message's internal date is its file's modification time (what Dovecot and Courier
use for INTERNALDATE). A message in new/ has not been looked at by a mail client, so being there
adds no flag; the rare new/ file that carries an info suffix keeps its letters. Within a folder,
messages come in order of the unique name's leading delivery time, then name (numbers compared
as numbers), which is arrival order for every common writer; folders come INBOX first, then by
name.

Writing. `MaildirWriter` writes Maildir++, LF line ends on disk (the Unix convention every
Maildir reader expects), fsyncs the file and then the directory it was renamed into, and keeps
keywords in `dovecot-keywords`, so Dovecot serves the result as it is. Every folder directory
must resolve inside the root (`filesystem.inside`), and two names may not land in one folder
(a case-insensitive file system): either is refused. Exported files carry the message's SHA-256
in their unique name (`,H=<hex>`, a field Dovecot ignores), so a second export into the same
tree can tell which messages are already there without reading them (`content_hashes`).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import stat
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from postoffice.durable import fsync_dir, make_dirs
from postoffice.message.lines import to_crlf, to_lf
from postoffice.store.blobs import blob_hash
from postoffice.transfer.filesystem import describe_kind, inside, open_regular
from postoffice.transfer.names import folder_level, mailbox_of_maildir_folder, maildir_folder_name
from postoffice.transfer.source import (
    FORWARDED,
    SourceMessage,
    TransferError,
    flags_from_maildir_info,
    is_keyword,
    keywords_of,
    maildir_info_letters,
)

__all__ = ["MaildirWriter", "count_maildir", "read_maildir"]

_INBOX = "INBOX"
_KEYWORDS_FILE = "dovecot-keywords"
_MARKER_FILE = "maildirfolder"  # Maildir++: "this directory is a folder, not a root"
_INFO = re.compile(r"(?P<unique>.+?)[:;](?P<version>[12]),(?P<letters>.*)", re.DOTALL)
_DIGITS = re.compile(r"(\d+)")
# The SHA-256 field our writer puts in a unique name (before the info suffix).
_HASH_FIELD = re.compile(r",H=([0-9a-f]{64})(?=,|$)")
# One counter for the whole process: two writers on the same tree within the same second must
# still not pick the same unique name (a rename onto an existing name would replace a message).
_COUNTER = itertools.count()


@dataclass(frozen=True, slots=True)
class _Folder:
    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class _Entry:
    order: tuple[object, ...]
    subdir: str  # "cur" or "new"
    filename: str
    unique: str
    letters: str


# ---------------------------------------------------------------------------------------------
# Reading


def read_maildir(path: Path) -> Iterator[SourceMessage]:
    """Every message of the Maildir (and its Maildir++ or nested folders) at `path`.

    Raises TransferError at once when `path` is not a Maildir. `source_id` is the folder name,
    "/", and the message's unique name (the file name without its info suffix), which stays the
    same when a client changes the flags.
    """
    return _read_folders(_find_folders(path))


def count_maildir(path: Path) -> int:
    """How many messages `read_maildir(path)` will yield (for a progress bar)."""
    return sum(len(_list_folder(folder.path)) for folder in _find_folders(path))


def _read_folders(folders: list[_Folder]) -> Iterator[SourceMessage]:
    for folder in folders:
        keyword_names = _read_keywords(folder.path)
        for entry in _list_folder(folder.path):
            loaded = _load(folder.path, entry)
            if loaded is None:
                continue  # deleted while we were reading: a live Maildir
            data, mtime, letters = loaded
            yield SourceMessage(
                raw=to_crlf(data),
                flags=frozenset(flags_from_maildir_info(letters, keyword_names)),
                internal_date=datetime.fromtimestamp(int(mtime), UTC),
                folder=folder.name,
                source_id=f"{folder.name}/{entry.unique}",
            )


def _is_maildir(path: Path) -> bool:
    try:
        return (path / "cur").is_dir() or (path / "new").is_dir()
    except OSError as exc:  # is_dir() answers False only for a missing path
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc


def _find_folders(root: Path) -> list[_Folder]:
    try:
        mode = os.stat(root).st_mode
        if not stat.S_ISDIR(mode):
            raise TransferError(f"{root} is {describe_kind(mode)}, not a Maildir folder.")
        root_is_maildir = _is_maildir(root)
    except FileNotFoundError:
        raise TransferError(f"{root} does not exist.") from None
    except OSError as exc:
        raise TransferError(f"{root} cannot be read: {exc.strerror or exc}.") from exc
    found: list[tuple[str, Path]] = []
    _walk(root, "", found, top=True)
    if root_is_maildir:
        found.append((_INBOX, root))
    elif not found:
        raise TransferError(
            f"{root} is not a Maildir: neither it nor a folder below it has a cur/ or new/ folder."
        )
    # Two folders may name one mailbox (`.Sent` and `Sent/` side by side, `.R&-D` and a UTF-8
    # `.R&D`, the root and an `INBOX/` folder): both are read into it, never one left out.
    found.sort(key=lambda item: (item[0] != _INBOX, item[0], str(item[1])))
    return [_Folder(name, path) for name, path in found]


def _mailbox_name(parent: str, level: str) -> str:
    """The mailbox of a folder level; a top-level INBOX in any case is INBOX (RFC 9051 §5.1)."""
    if not parent and level.upper() == _INBOX:
        return _INBOX
    return f"{parent}/{level}" if parent else level


def _walk(directory: Path, parent: str, found: list[tuple[str, Path]], *, top: bool) -> None:
    """Collect folders below `directory`: Maildir++ dot-folders (at the top), nested ones
    (Dovecot LAYOUT=fs, mbsync "SubFolders Verbatim", offlineimap), and mbsync's "SubFolders
    Legacy" `Folder/.Sub` below the top."""
    try:
        with os.scandir(directory) as it:
            # Symbolic links are not followed: a link back up the tree would never end.
            children = sorted(
                (e for e in it if e.is_dir(follow_symlinks=False)), key=lambda e: e.name
            )
    except OSError as exc:
        raise TransferError(f"{directory} cannot be read: {exc.strerror or exc}.") from exc
    for child in children:
        name = child.name
        if name in ("cur", "new", "tmp", ".", ".."):
            continue
        path = Path(child.path)
        if name.startswith("."):
            if not top:
                # mbsync's Legacy layout; any other dot-directory is some program's own data.
                if len(name) > 1 and _is_maildir(path):
                    folder = _mailbox_name(parent, folder_level(name[1:]))
                    found.append((folder, path))
                    _walk(path, folder, found, top=False)
                continue
            dotted = mailbox_of_maildir_folder(name)
            if dotted is None:
                continue
            folder = _mailbox_name("", dotted)
            if _is_maildir(path):
                found.append((folder, path))
        else:
            folder = _mailbox_name(parent, folder_level(name))
            if _is_maildir(path):
                found.append((folder, path))
            _walk(path, folder, found, top=False)


def _order_key(unique: str) -> tuple[object, ...]:
    """Delivery time first (the leading number), then the name with numbers compared as numbers
    ("M42911" before "M242911"), so arrival order survives writers that do not pad."""
    chunks = _DIGITS.split(unique)
    return tuple(int(c) if i % 2 else c for i, c in enumerate(chunks))


def _parse_name(subdir: str, filename: str) -> _Entry:
    m = _INFO.fullmatch(filename)
    if m is None:
        unique, letters = filename, ""
    else:
        unique = m["unique"]
        letters = m["letters"] if m["version"] == "2" else ""
    return _Entry(_order_key(unique), subdir, filename, unique, letters)


def _list_folder(folder: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    for subdir in ("cur", "new"):
        try:
            with os.scandir(folder / subdir) as it:
                for e in it:
                    # Dot-files are other programs' temporary or control files.
                    if not e.name.startswith(".") and e.is_file():
                        entries.append(_parse_name(subdir, e.name))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TransferError(
                f"{folder / subdir} cannot be read: {exc.strerror or exc}."
            ) from exc
    entries.sort(key=lambda e: (e.order, e.filename))
    return entries


def _load(folder: Path, entry: _Entry) -> tuple[bytes, float, str] | None:
    """The file's bytes, mtime and info letters; None if the message has gone.

    A mail client may rename the file (new flags, or new/ to cur/) between listing and reading;
    then it is looked up again by its unique name, and the new name's flags are the ones used.
    """
    path = folder / entry.subdir / entry.filename
    letters = entry.letters
    for attempt in range(2):
        f = open_regular(path, missing_ok=True)
        if f is None:
            if attempt:
                return None
            moved = _find_unique(folder, entry.unique)
            if moved is None:
                return None
            path, letters = moved
            continue
        try:
            with f:
                mtime = os.fstat(f.fileno()).st_mtime
                return f.read(), mtime, letters
        except OSError as exc:
            raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    return None


def _find_unique(folder: Path, unique: str) -> tuple[Path, str] | None:
    for subdir in ("cur", "new"):
        try:
            names = os.listdir(folder / subdir)
        except OSError:
            continue
        for name in names:
            entry = _parse_name(subdir, name)
            if entry.unique == unique:
                return folder / subdir / name, entry.letters
    return None


def _read_keywords(folder: Path) -> dict[str, str]:
    """Dovecot's keyword letters for a folder: lines "N name", N = 0..25 for a..z."""
    try:
        text = (folder / _KEYWORDS_FILE).read_text("utf-8", errors="replace")
    except OSError:
        return {}
    names: dict[str, str] = {}
    for line in text.splitlines():
        number, _, name = line.strip().partition(" ")
        name = name.strip()
        if number.isdigit() and int(number) < 26 and is_keyword(name):
            names[chr(ord("a") + int(number))] = name
    return names


# ---------------------------------------------------------------------------------------------
# Writing


class MaildirWriter:
    """Write messages into a Maildir++ tree at `path`, creating it and its parents (or adding
    to an existing one).

    >>> with MaildirWriter(Path("Maildir")) as md:               # doctest: +SKIP
    ...     md.add(raw, {"\\\\Seen"}, internal_date, "Archive/2024")
    '1718000000.4242_0.mail.example'

    Each `add` is durable when it returns. Keywords get letters a-z in the folder's
    `dovecot-keywords`; a folder has room for 26, and keywords beyond that are not written
    (they are listed in `dropped_keywords`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dropped_keywords: set[str] = set()
        if path.exists() and not path.is_dir():
            raise TransferError(f"{path} is a file, not a Maildir folder.")
        try:
            make_dirs(path.parent)
        except OSError as exc:
            raise TransferError(f"{path.parent} cannot be created: {exc.strerror or exc}.") from exc
        # RFC-less but universal: the host part may not hold "/" or the info separators.
        host = socket.gethostname() or "localhost"
        self._host = host.replace("/", "\\057").replace(":", "\\072").replace(";", "\\073")
        self._ready: dict[str, Path] = {}
        self._owners: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) of a folder -> its name
        self._keyword_letters: dict[Path, dict[str, str]] = {}
        self._folder(_INBOX)  # an export of nothing still leaves a valid, empty Maildir

    def add(
        self,
        raw: bytes,
        flags: Iterable[str] = frozenset(),
        internal_date: datetime | None = None,
        folder: str = _INBOX,
        *,
        content_hash: str | None = None,
        unique: str | None = None,
    ) -> str:
        """Write one message into `folder` and return its unique name.

        `unique` names the file instead of a fresh unique name (fetch derives it from the
        source's UIDVALIDITY and UID, so a rerun after a crash recognises the message); a
        leftover tmp/ file of that name is replaced.

        The message goes to tmp/, is fsynced, dated (mtime = `internal_date`, naive = UTC),
        renamed into cur/ with its flags, and cur/ is fsynced. `content_hash`, the SHA-256 of
        `raw` (the store's blob id), goes into the unique name for `content_hashes`.
        """
        directory = self._folder(folder)
        flags = frozenset(flags)
        letters = maildir_info_letters(flags, self._letters_for(directory, flags))
        data = to_lf(raw)
        while True:
            if unique is not None:
                tmp = directory / "tmp" / unique
                final = directory / "cur" / f"{unique}:2,{letters}"
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                except OSError as exc:
                    raise TransferError(f"{tmp} cannot be written: {exc.strerror or exc}.") from exc
                break
            unique = f"{int(time.time())}.{os.getpid()}_{next(_COUNTER)}.{self._host}"
            if content_hash is not None:
                unique += f",H={content_hash}"
            tmp = directory / "tmp" / unique
            final = directory / "cur" / f"{unique}:2,{letters}"
            if final.exists():
                continue  # written by an earlier process that had the same pid: take another
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # left behind by a crashed writer with the same pid: take another
            except OSError as exc:
                raise TransferError(f"{tmp} cannot be written: {exc.strerror or exc}.") from exc
            break
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if internal_date is not None:
                    stamp = _timestamp(internal_date)
                    os.utime(fd, (stamp, stamp))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            fsync_dir(directory / "cur")
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise TransferError(f"{final} cannot be written: {exc.strerror or exc}.") from exc
        return unique

    def set_flags(self, folder: str, files: dict[Path, frozenset[str]]) -> dict[Path, Path]:
        """Give each message file of `folder` (in its cur/ or new/) exactly `flags`: renamed
        within the folder to `<unique>:2,<letters>` in cur/ (a message with flags has been
        seen by a client, so it no longer belongs in new/), keywords lettered as `add` letters
        them. The renames are atomic; the directories are fsynced once at the end, so the new
        names are durable when this returns. Returns {old path: new path} for each file
        renamed; a file that is gone (a mail reader renamed or removed it) is left out."""
        directory = self._folder(folder)
        moved: dict[Path, Path] = {}
        touched: set[Path] = set()
        try:
            for path, flags in files.items():
                entry = _parse_name(path.parent.name, path.name)
                letters = maildir_info_letters(flags, self._letters_for(directory, frozenset(flags)))
                target = directory / "cur" / f"{entry.unique}:2,{letters}"
                if target == path:
                    continue
                try:
                    os.rename(path, target)
                except FileNotFoundError:
                    continue
                moved[path] = target
                touched.update((path.parent, target.parent))
            for changed in touched:
                fsync_dir(changed)
        except OSError as exc:
            raise TransferError(f"{directory} cannot be changed: {exc.strerror or exc}.") from exc
        return moved

    @property
    def host_part(self) -> str:
        """This host's name as unique names carry it (no "/", ":" or ";")."""
        return self._host

    def folder_path(self, folder: str) -> Path:
        """The directory of `folder`, created (with cur/ new/ tmp/) if missing."""
        return self._folder(folder)

    def content_hashes(self, folder: str) -> Counter[str]:
        """How many messages of each SHA-256 (of the CRLF form, as the store names blobs) the
        folder already holds: read from the `,H=` field of names this writer gave, else by
        reading the file (messages other programs put there)."""
        directory = self._folder(folder)
        found: Counter[str] = Counter()
        for entry in _list_folder(directory):
            m = _HASH_FIELD.search(entry.unique)
            if m is not None:
                found[m[1]] += 1
                continue
            loaded = _load(directory, entry)
            if loaded is not None:
                found[blob_hash(to_crlf(loaded[0]))] += 1
        return found

    def close(self) -> None:
        """Nothing is buffered (every `add` is durable); present for symmetry with MboxWriter."""

    def __enter__(self) -> MaildirWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _folder(self, folder: str) -> Path:
        """The folder's directory, created with cur/ new/ tmp/ (and the marker) on first use."""
        known = self._ready.get(folder)
        if known is not None:
            return known
        if folder.upper() == _INBOX:
            directory = self.path
        else:
            directory = self.path / maildir_folder_name(folder)
        try:
            created = _make_dir(inside(self.path, directory))
            for sub in ("cur", "new", "tmp"):
                created |= _make_dir(inside(self.path, directory / sub))
            if directory != self.path and not (directory / _MARKER_FILE).exists():
                (directory / _MARKER_FILE).touch(0o600)
                created = True
            if created:
                fsync_dir(directory)
                fsync_dir(directory.parent)
            identity = os.stat(directory)
        except OSError as exc:
            raise TransferError(f"{directory} cannot be created: {exc.strerror or exc}.") from exc
        other = self._owners.setdefault((identity.st_dev, identity.st_ino), folder)
        if other != folder:
            raise TransferError(
                f"The mailboxes '{other}' and '{folder}' would share the folder {directory}"
                " (this file system ignores case?); export them one at a time with --mailbox."
            )
        self._ready[folder] = directory
        return directory

    def _letters_for(self, directory: Path, flags: frozenset[str]) -> dict[str, str]:
        """Keyword -> letter for this folder, giving new keywords free letters (and saving them)."""
        letters = self._keyword_letters.get(directory)
        if letters is None:
            letters = {name: letter for letter, name in _read_keywords(directory).items()}
            self._keyword_letters[directory] = letters
        wanted = [k for k in keywords_of(flags) if k != FORWARDED and is_keyword(k)]
        missing = [k for k in wanted if k not in letters]
        if missing:
            free = sorted(set("abcdefghijklmnopqrstuvwxyz") - set(letters.values()))
            for keyword in missing:
                if not free:
                    self.dropped_keywords.add(keyword)
                    continue
                letters[keyword] = free.pop(0)
            self._save_keywords(directory, letters)
        return letters

    def _save_keywords(self, directory: Path, letters: dict[str, str]) -> None:
        lines = sorted((ord(letter) - ord("a"), name) for name, letter in letters.items())
        text = "".join(f"{number} {name}\n" for number, name in lines)
        tmp = directory / "tmp" / f"{_KEYWORDS_FILE}.{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / _KEYWORDS_FILE)
            fsync_dir(directory)
        except OSError as exc:
            raise TransferError(
                f"{directory / _KEYWORDS_FILE} cannot be written: {exc.strerror or exc}."
            ) from exc


def _timestamp(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _make_dir(path: Path) -> bool:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise TransferError(f"{path} is a file, not a Maildir folder.") from None
        return False
    return True


