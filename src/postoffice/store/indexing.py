"""Turn message bytes into an `IndexedBlob`: hash, durable blob file, parsed metadata.

This is the CPU- and disk-heavy half of storing a message. It is a plain function of its
inputs, so it runs in a worker thread for SMTP delivery and in worker processes for bulk
imports, leaving the single store writer nothing to do but insert rows.
"""

from __future__ import annotations

from postoffice.message.lines import wire_form
from postoffice.message.mime import dump_structure, parse_message
from postoffice.message.mime_model import MessageMetadata
from postoffice.store.blobs import BlobStore, blob_hash
from postoffice.store.interface import IndexedBlob


def queue_blob(raw: bytes, blobs: BlobStore | None = None, *, stage: bool = False) -> IndexedBlob:
    """`raw` for the outbound queue alone: hashed and (with `blobs`) staged like `index_message`,
    but not parsed: the queue sends bytes, and a parse would cost more than the rest of queueing a
    5 KB message. The store fills the IMAP fields if a message ever arrives with these bytes."""
    sha256 = blob_hash(raw)
    staged = None
    if blobs is not None and stage:
        path = blobs.stage(raw, sha256)
        staged = str(path) if path is not None else None
    return IndexedBlob(sha256=sha256, size=len(raw), structure="", subject="", from_="", to="", cc="",
                       bcc="", sent_date=None, message_id=None, in_reply_to=None, references="",
                       preview="", wire_form=wire_form(raw), staged=staged, queue_only=True)


def index_message(
    raw: bytes, blobs: BlobStore | None = None, sha256: str | None = None, *, stage: bool = False,
    parsed: MessageMetadata | None = None,
) -> IndexedBlob:
    """Parse `raw` (CRLF line endings) and, when `blobs` is given, store it first: durably, or
    with `stage`, as a temporary file the store's writer makes durable at its commit.
    `parsed`: the parse of exactly these bytes, made already (by the spam score's stage)."""
    sha256 = sha256 or blob_hash(raw)
    staged = None
    if blobs is not None:
        if stage:
            path = blobs.stage(raw, sha256)
            staged = str(path) if path is not None else None
        else:
            blobs.write(raw, sha256)
    meta = parsed if parsed is not None else parse_message(raw)
    headers = meta.headers
    return IndexedBlob(
        sha256=sha256,
        size=len(raw),
        structure=dump_structure(meta.envelope, meta.body),
        subject=headers.subject,
        from_=headers.from_,
        to=headers.to,
        cc=headers.cc,
        bcc=headers.bcc,
        sent_date=headers.date,
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=" ".join(headers.references),
        preview=meta.preview,
        wire_form=wire_form(raw),
        staged=staged,
    )
