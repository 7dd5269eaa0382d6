"""`postoffice backup DEST` and `postoffice restore SRC --data DIR`: a whole data directory.

A backup folder holds:

    backup.json     what is in it: when, from where, schema version, counts, the files
    store.sqlite3   the database, one self-contained file
    blobs/          the message files it references (named by SHA-256, as in a data directory)
    files/          postoffice.toml, the TLS certificate and key, the DKIM keys (keys/),
                    with their paths relative to the data directory

Included: the store and every message file it references, postoffice.toml, and the TLS and DKIM
files when they are inside the data directory. Not included: files the configuration names
outside it (e.g. a certbot certificate in /etc/letsencrypt; the summary lists them), and what a
running server recreates (serve.lock, lock files, the -wal and -shm files) or what is a copy
already (store.sqlite3.pre-upgrade-vN).

A second backup into the same folder copies only the message files that are new, and removes
those the new database no longer references. The store is copied consistently while `serve`
runs (see store/sqlite/backup.py). Restore goes into an empty or new directory only, after
checking the backup, and checks what it wrote.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from postoffice.config import CONFIG_FILE_NAME, Config, ConfigError, load_config
from postoffice.durable import fsync_dir, write_file
from postoffice.store.sqlite.backup import (
    BackupError,
    Progress,
    StoreCopy,
    copy_store,
    restore_store,
    verify_store_copy,
)

__all__ = ["BackupError", "BackupSummary", "back_up", "restore", "verify_backup"]

MANIFEST = "backup.json"
FORMAT = 1
_DB = "store.sqlite3"
_BLOBS = "blobs"
_FILES = "files"


@dataclass
class BackupSummary:
    destination: str
    schema_version: int
    messages: int
    blob_files: int
    blob_bytes: int
    copied_files: int = 0
    copied_bytes: int = 0
    removed_files: int = 0
    files: list[str] = field(default_factory=list)  # copied from the data directory
    not_included: list[str] = field(default_factory=list)  # named by the config, outside it
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _summary(where: Path, copy: StoreCopy, files: list[str], outside: list[str], started: float) -> BackupSummary:
    return BackupSummary(str(where), copy.schema_version, copy.messages, copy.blobs, copy.blob_bytes,
                         copy.copied, copy.copied_bytes, copy.removed, files, outside,
                         round(time.monotonic() - started, 2))


def _config_files(config: Config) -> tuple[list[str], list[str]]:
    """The data directory's own files to back up (relative paths), and the files the config
    names outside the data directory (absolute), which are not backed up."""
    data = config.data_dir
    inside: list[str] = [CONFIG_FILE_NAME]
    outside: list[str] = []
    for path in (config.tls.cert_file, config.tls.key_file):
        if path.is_relative_to(data):
            if path.is_file():
                inside.append(str(path.relative_to(data)))
        else:
            outside.append(str(path))
    keys = data / "keys"
    if keys.is_dir():
        inside += sorted(str(p.relative_to(data)) for p in keys.rglob("*") if p.is_file())
    for path in (config.store.path, config.store.blobs):
        if not path.is_relative_to(data):
            outside.append(f"{path} (backed up as the store, restored inside the new data directory)")
    return inside, outside


def _writable(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        probe = dest / ".postoffice-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise BackupError(f"{dest} is not writable ({error.strerror or error}).") from error


_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@contextmanager
def _only_backup_into(dest: Path) -> Iterator[None]:
    """Hold `dest` for one backup: a second one at the same time (an overlapping cron job)
    would replace the database copy under the first and remove message files the other's
    database references. flock(2) on the folder itself, so the kernel lets go if we die."""
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"Another backup into {dest} is running; wait for it to end, or choose another folder.") from None
        except OSError as error:
            if error.errno not in _NO_LOCKS:
                raise
            # A file system without locks (some network mounts): back up all the same.
        yield
    finally:
        os.close(fd)


def _check_contents(dest: Path) -> None:
    if (dest / MANIFEST).exists() or (dest / _DB).exists():
        return  # an earlier backup: updated incrementally
    ours = {_BLOBS, _DB + ".partial"}  # what a first backup killed part way leaves
    if any(entry.name not in ours for entry in dest.iterdir()):
        raise BackupError(f"{dest} holds other files; back up into an empty folder or an earlier backup.")


def back_up(config: Config, dest: Path, progress: Progress | None = None) -> BackupSummary:
    """Back the data directory of `config` up into `dest` (new or an earlier backup), verify the
    result, and say what was copied."""
    started = time.monotonic()
    if config.store.backend != "sqlite":
        raise BackupError(f"backup supports the sqlite store only, not {config.store.backend}.")
    dest = Path(os.path.abspath(dest))
    if dest == config.data_dir or dest.is_relative_to(config.store.blobs):
        raise BackupError(f"{dest} is inside the data it would back up; choose a folder outside {config.data_dir}.")
    _writable(dest)
    with _only_backup_into(dest):
        _check_contents(dest)
        copy = copy_store(config.store.path, config.store.blobs, dest / _DB, dest / _BLOBS, progress)
        inside, outside = _config_files(config)
        for relative in inside:
            source = config.data_dir / relative
            write_file(dest / _FILES / relative, source.read_bytes(), mode=source.stat().st_mode & 0o777)
        verify_store_copy(dest / _DB, dest / _BLOBS)
        summary = _summary(dest, copy, inside, outside, started)
        manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": str(config.data_dir), **summary.as_json()}
        write_file(dest / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode(), mode=0o600)
    return summary


def verify_backup(src: Path, *, hashes: bool = True) -> BackupSummary:
    """Check a backup folder: manifest, database (quick_check), every message file it references
    (present, its size, and with `hashes` its SHA-256)."""
    started = time.monotonic()
    manifest_path = src / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not a postoffice backup (it has no {MANIFEST}).") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{manifest_path} cannot be read ({error}).") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src} was made by another version of postoffice (backup format {manifest.get('format')}).")
    files = [str(f) for f in manifest.get("files", [])]
    for relative in files:
        if not (src / _FILES / relative).is_file():
            raise BackupError(f"{src / _FILES / relative} is missing from the backup.")
    copy = verify_store_copy(src / _DB, src / _BLOBS, hashes=hashes)
    return _summary(src, copy, files, [str(f) for f in manifest.get("not_included", [])], started)


def restore(src: Path, data_dir: Path, progress: Progress | None = None) -> BackupSummary:
    """Restore the backup in `src` into `data_dir`, which must be empty or not exist yet."""
    started = time.monotonic()
    src = Path(os.path.abspath(src))
    data_dir = Path(os.path.abspath(data_dir))
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"{data_dir} is not empty; restore only into an empty or new directory, so nothing is overwritten.")
    # Sizes and quick_check now; each file's SHA-256 as it is copied, before the store appears.
    checked = verify_backup(src, hashes=False)
    try:
        config = load_config(data_dir, src / _FILES / CONFIG_FILE_NAME)
    except ConfigError as error:
        raise BackupError(f"The configuration in the backup cannot be used: {error}") from error
    for path in (config.store.path, config.store.blobs):
        if path.exists() and (path.is_file() or any(path.iterdir())):
            raise BackupError(f"The restored configuration puts the store at {path}, which is in use; edit"
                              f" {src / _FILES / CONFIG_FILE_NAME} or free that place first.")
    blobs_existed = config.store.blobs.exists()  # empty (checked above): only its contents are ours
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    try:
        copy = restore_store(src / _DB, src / _BLOBS, config.store.path, config.store.blobs, progress)
        # postoffice.toml last: its presence means "initialised" (as `init` does it).
        for relative in sorted(checked.files, key=lambda name: name == CONFIG_FILE_NAME):
            source = src / _FILES / relative
            write_file(data_dir / relative, source.read_bytes(), mode=source.stat().st_mode & 0o777)
        fsync_dir(data_dir)
        verify_store_copy(config.store.path, config.store.blobs)
    except BaseException:
        # A damaged file found part way, a full disk, Ctrl-C: what this restore wrote goes, so
        # that it can run again into the same place once the cause is dealt with.
        _remove_restored(data_dir, config, blobs_existed)
        raise
    return _summary(data_dir, copy, checked.files, checked.not_included, started)


def _remove_restored(data_dir: Path, config: Config, blobs_existed: bool) -> None:
    """Remove what a failed restore wrote: all of `data_dir` (empty before), the store file and
    the blob directory's contents (or the directory, if the restore made it)."""
    store = config.store.path
    for path in (store, store.with_name(store.name + ".partial")):
        if path.is_file():
            path.unlink()
    blobs = config.store.blobs
    if blobs.is_dir():
        if blobs_existed:
            for entry in blobs.iterdir():
                _remove(entry)
        else:
            shutil.rmtree(blobs, ignore_errors=True)
    for entry in data_dir.iterdir():
        _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
