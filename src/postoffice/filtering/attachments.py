"""What a message carries: its body's leaf parts, attachment names, and the dangerous ones.

    for leaf in leaf_parts(metadata.body): ...          # Leaf(part, attachment, filename)
    dangerous_attachments(raw, metadata.body)           # [("EXECUTABLE_ATTACHMENT", "invoice.exe")]

Executables and scripts are what mail-borne malware arrives as; Office documents with macros
(.docm, .xlsm ...) are its favourite carrier after them, and a .zip whose listed names are
programs is how both get past filters that read only the outer name. A .zip is looked into
only when it is small (`MAX_ZIP_BYTES`): its central directory is read with the standard
library, nothing is extracted, and at most `MAX_ZIP_NAMES` names are looked at.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from postoffice.message.mime import BodyPart
from postoffice.message.mime_headers import decode_rfc2231, decode_words
from postoffice.message.mime_text import decode_transfer

EXECUTABLE_EXTENSIONS = frozenset({
    "exe", "scr", "js", "jse", "vbs", "vbe", "bat", "cmd", "com", "pif", "jar", "lnk", "iso",
    "img", "msi", "hta", "wsf", "ps1", "cpl", "reg", "vhd", "vhdx",
})
MACRO_EXTENSIONS = frozenset({"docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "sldm"})
EXECUTABLE_TYPES = frozenset({
    "application/x-msdownload", "application/x-ms-dos-executable", "application/x-dosexec",
    "application/x-msdos-program", "application/vnd.microsoft.portable-executable",
    "application/java-archive", "application/x-ms-shortcut", "application/hta",
})
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
MAX_ZIP_BYTES = 10 * 1024 * 1024  # encoded size of a .zip looked into
MAX_ZIP_NAMES = 1000
MAX_DEPTH = 20  # nested parts followed; mime.py bounds the tree itself


@dataclass(frozen=True, slots=True)
class Leaf:
    part: BodyPart
    attachment: bool
    filename: str  # "" when the part names no file


def filename_of(part: BodyPart) -> str:
    """The file name a part gives (Content-Disposition filename, else Content-Type name),
    decoded from RFC 2231 or RFC 2047 form."""
    sources = (part.disposition[1] if part.disposition else ()), part.params
    for wanted, params in zip(("filename", "name"), sources, strict=True):
        for key, value in params:
            if key.partition("*")[0] != wanted:
                continue
            return decode_rfc2231(value) if key.endswith("*") else decode_words(value)
    return ""


def leaf_parts(body: BodyPart, parent: str = "", depth: int = 0) -> Iterator[Leaf]:
    """Every leaf of the MIME tree (into attached messages too), with whether it is an
    attachment, decided as mime.py's attachment count does."""
    if depth > MAX_DEPTH:
        return
    if body.children:
        for child in body.children:
            yield from leaf_parts(child, body.subtype, depth + 1)
        return
    if body.message is not None:
        yield from leaf_parts(body.message[1], "", depth + 1)
        return
    name = filename_of(body)
    disposition = body.disposition[0] if body.disposition else None
    if disposition == "attachment":
        attachment = True
    elif body.type == "text":
        attachment = bool(name) and disposition != "inline"
    else:
        attachment = parent != "related" and body.type not in ("multipart",) and (
            (body.type, body.subtype) not in (("application", "pgp-signature"),
                                              ("application", "pkcs7-signature")))
    yield Leaf(body, attachment, name)


def extension(name: str) -> str:
    return name.rstrip(". ").rpartition(".")[2].lower() if "." in name else ""


def dangerous_attachments(raw: bytes, body: BodyPart) -> list[tuple[str, str]]:
    """(rule name, file name) for each executable, macro document or .zip holding an
    executable among the attachments; each rule once, naming the first such file."""
    found: dict[str, str] = {}
    for leaf in leaf_parts(body):
        part, name = leaf.part, leaf.filename
        ext = extension(name)
        kind = f"{part.type}/{part.subtype}"
        if ext in EXECUTABLE_EXTENSIONS or (kind in EXECUTABLE_TYPES and leaf.attachment):
            found.setdefault("EXECUTABLE_ATTACHMENT", name or kind)
        elif ext in MACRO_EXTENSIONS:
            found.setdefault("MACRO_ATTACHMENT", name)
        elif (ext == "zip" or kind in ZIP_TYPES) and "ARCHIVED_EXECUTABLE" not in found:
            inner = _executable_in_zip(raw, part)
            if inner:
                found["ARCHIVED_EXECUTABLE"] = f"{name or 'a zip file'}: {inner}"
    return list(found.items())


def _executable_in_zip(raw: bytes, part: BodyPart) -> str:
    """The first listed name in the zip that is an executable, or ""."""
    if part.end - part.body_start > MAX_ZIP_BYTES:
        return ""
    data = decode_transfer(raw[part.body_start:part.end], part.encoding)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for index, info in enumerate(archive.infolist()):
                if index >= MAX_ZIP_NAMES:
                    break
                if extension(info.filename.rpartition("/")[2]) in EXECUTABLE_EXTENSIONS:
                    return info.filename
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return ""
    return ""
