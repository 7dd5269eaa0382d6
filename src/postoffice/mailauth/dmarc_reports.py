"""Incoming DMARC aggregate reports (RFC 7489 §7.2 and appendix C; DMARCbis's RFC 9990 schema).

Pure: bytes in, typed report out, no I/O::

    for report in reports_in_message(raw_mail):      # every attached report of one mail
        print(report.org_name, report.policy.domain, sum(row.count for row in report.rows))
    report = parse_aggregate_report(xml_or_gzip_or_zip_bytes)

Implementation notes (invariants):
- Input is XML, or XML compressed with gzip or in a zip archive, told apart by content (magic
  bytes), never by a file name or a Content-Type: reporters label them every which way.
- Decompressed XML is read only up to MAX_XML_SIZE octets, its tree holds at most MAX_ELEMENTS
  elements and a report at most MAX_ROWS records, so a compression bomb or a giant report costs
  bounded memory (a few hundred MB at worst) and time.
- A DTD is refused outright (entity expansion, external entities: the "billion laughs" and
  XXE attacks), checked on the text and again by expat's handlers.
- Real reporters send broken XML (an unescaped `<` in a value, bytes that are not UTF-8).
  When expat refuses a document, a tolerant reader recovers what it can: the schema has no
  mixed content, so tags and text are enough. Empty input is an error, never an empty report.
- Enumerated values ("Pass", "NONE") are lower-cased: several reporters capitalise them.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from email.message import Message
from xml.parsers import expat

MAX_XML_SIZE = 32 * 1024 * 1024
MAX_ROWS = 200_000
# Elements of one report's XML tree: a record has about 25, so ~40,000 records. The tree costs
# ~230 bytes per element: without a cap 8 KB of gzip (8 MB of "<a/>") made a 500 MB tree, and
# 32 KB of gzip (MAX_XML_SIZE of XML) about 2 GB.
MAX_ELEMENTS = 1_000_000
MAX_TEXT = 512  # longest value kept (a domain is at most 253)
MAX_ATTACHMENTS = 20


class ReportError(ValueError):
    """Not a DMARC aggregate report (or one too broken to read); str() says why in one sentence."""


@dataclass(frozen=True, slots=True)
class PolicyPublished:
    """The record the reporter found for the domain (RFC 7489 appendix C PolicyPublishedType)."""

    domain: str
    adkim: str = ""  # "r" or "s"; "" when not reported
    aspf: str = ""
    p: str = ""  # none | quarantine | reject
    sp: str = ""
    np: str = ""  # DMARCbis
    pct: int | None = None
    fo: str = ""
    testing: bool = False  # DMARCbis t=y


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One DKIM or SPF result the reporter saw (auth_results/dkim or auth_results/spf)."""

    domain: str
    result: str  # lower-case: pass, fail, none, neutral, temperror, permerror, ...
    selector: str = ""  # DKIM only
    scope: str = ""  # SPF only: mfrom or helo ("" when not reported)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One record: messages from one source with the same results."""

    source_ip: str
    count: int
    disposition: str  # none | quarantine | reject (DMARCbis also: pass)
    dkim: str  # pass | fail: the DMARC-aligned verdicts (policy_evaluated)
    spf: str
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[tuple[str, str], ...] = ()  # (type, comment): why the policy was overridden
    dkim_results: tuple[AuthResult, ...] = ()
    spf_results: tuple[AuthResult, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC pass as the reporter evaluated it: aligned DKIM or aligned SPF."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True, slots=True)
class AggregateReport:
    org_name: str
    email: str
    report_id: str
    begin: int  # the date range, UNIX time
    end: int
    policy: PolicyPublished
    rows: tuple[ReportRow, ...] = ()
    extra_contact_info: str = ""
    errors: tuple[str, ...] = ()
    version: str = ""

    @property
    def messages(self) -> int:
        return sum(row.count for row in self.rows)


# --- getting at the XML --------------------------------------------------------------------------


def parse_aggregate_report(data: bytes) -> AggregateReport:
    """One report from its XML, gzip or zip bytes. Raises ReportError."""
    return _report(_element_tree(_xml_bytes(data)))


def reports_in_message(raw: bytes) -> list[AggregateReport]:
    """Every aggregate report attached to (or forming the body of) one mail. Raises ReportError
    when the mail holds none, with the reason the last candidate was refused."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    reports: list[AggregateReport] = []
    problem = "the mail has no XML, gzip or zip part"
    tried = 0
    for part in message.walk():
        if part.is_multipart() or tried >= MAX_ATTACHMENTS:
            continue
        payload = _payload(part)
        if not payload or not _looks_like_report(payload):
            continue
        tried += 1
        try:
            reports.append(parse_aggregate_report(payload))
        except ReportError as error:
            problem = str(error)
    if not reports:
        raise ReportError(f"No DMARC aggregate report found: {problem}.")
    return reports


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: not a report we can read
        return b""
    return payload if isinstance(payload, bytes) else b""


def _looks_like_report(payload: bytes) -> bool:
    head = payload[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"\x1f\x8b", b"PK\x03\x04", b"<?xml", b"<feedback", b"<!--")) or b"<feedback" in head


def _xml_bytes(data: bytes) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        return _gunzip(data)
    if data.startswith(b"PK\x03\x04"):
        return _unzip(data)
    if len(data) > MAX_XML_SIZE:
        raise ReportError(f"The report is larger than {MAX_XML_SIZE} octets.")
    return data


def _gunzip(data: bytes) -> bytes:
    # zlib rather than GzipFile: some reporters (Mimecast) leave bytes after the gzip member,
    # which GzipFile takes for a broken second member.
    inflater = zlib.decompressobj(wbits=31)
    try:
        xml = inflater.decompress(data, MAX_XML_SIZE + 1)
    except zlib.error as error:
        raise ReportError(f"The gzip data cannot be decompressed ({error}).") from None
    if not inflater.eof and len(xml) <= MAX_XML_SIZE:
        raise ReportError("The gzip data is cut short.")
    return _within_limit(xml)


def _unzip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [i for i in archive.infolist() if not i.is_dir()]
            if not names:
                raise ReportError("The zip archive is empty.")
            member = next((i for i in names if i.filename.lower().endswith(".xml")), names[0])
            with archive.open(member) as file:
                xml = file.read(MAX_XML_SIZE + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError) as error:
        raise ReportError(f"The zip archive cannot be read ({error}).") from None
    return _within_limit(xml)


def _within_limit(xml: bytes) -> bytes:
    if len(xml) > MAX_XML_SIZE:
        raise ReportError(f"The report decompresses to more than {MAX_XML_SIZE} octets.")
    return xml


# --- XML to a small tree -------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    name: str  # local name, lower-case
    text: str = ""
    children: list[_Node] = field(default_factory=list)

    def child(self, name: str) -> _Node | None:
        return next((c for c in self.children if c.name == name), None)

    def all(self, name: str) -> list[_Node]:
        return [c for c in self.children if c.name == name]

    def value(self, *path: str) -> str:
        node: _Node | None = self
        for name in path:
            node = node.child(name) if node is not None else None
        return " ".join(node.text.split())[:MAX_TEXT] if node is not None else ""


class _ElementCount:
    def __init__(self) -> None:
        self.elements = 0

    def add(self) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise ReportError(f"The report has more than {MAX_ELEMENTS} XML elements.")


_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class _Refused(Exception):
    pass


def _element_tree(xml: bytes) -> _Node:
    if not xml.strip():
        raise ReportError("The report is empty.")
    if _DTD.search(xml):
        raise ReportError("The report contains a DTD, which is refused (entity expansion).")
    try:
        return _strict(xml)
    except _Refused:
        raise ReportError("The report contains a DTD, which is refused (entity expansion).") from None
    except expat.ExpatError:
        return _tolerant(xml)


def _local(name: str) -> str:
    return name.rpartition(":")[2].lower()


def _strict(xml: bytes) -> _Node:
    root = _Node("")
    stack = [root]
    counter = _ElementCount()

    def start(name: str, _attributes: dict[str, str]) -> None:
        counter.add()
        node = _Node(_local(name))
        stack[-1].children.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        node = stack[-1]
        if len(node.text) < MAX_TEXT:
            node.text += data

    def refuse(*_args: object) -> int:
        raise _Refused

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(xml, True)
    if not root.children:
        raise ReportError("The report holds no XML element.")
    return root.children[0]


# An unterminated comment, processing instruction or CDATA section runs to the end of the text:
# with the terminator required, each of n "<!--" scanned to the end again (quadratic: 180 KB of
# "<![CDATA[" took minutes, holding the GIL).
_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)|<\?.*?(?:\?>|\Z)|<!\[CDATA\[(?P<cdata>.*?)(?:\]\]>|\Z)"
    r"|<(?P<close>/?)(?P<name>[A-Za-z_][\w.:-]*)(?:\s[^<>]*)?(?P<empty>/?)>",
    re.DOTALL,
)
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name[0] != "#":
            return _ENTITIES[name]
        code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        return chr(code) if 0 < code < 0x110000 else ""
    return _ENTITY.sub(one, text)


def _tolerant(xml: bytes) -> _Node:
    """What a lenient reader makes of broken XML: well-formed tags open and close elements
    (a stray close tag is ignored, a missing one is implied), everything else is text."""
    document = xml.decode("utf-8", "replace")
    root = _Node("")
    stack = [root]
    counter = _ElementCount()

    def add_text(text: str) -> None:
        node = stack[-1]
        if len(node.text) < MAX_TEXT:
            node.text += text

    position = 0
    for match in _TOKEN.finditer(document):
        add_text(_unescape(document[position:match.start()]))
        position = match.end()
        if match.group("cdata") is not None:
            add_text(match.group("cdata"))
        elif match.group("name"):
            name = _local(match.group("name"))
            if match.group("close"):
                names = [node.name for node in stack[1:]]
                if name in names:
                    del stack[len(names) - names[::-1].index(name):]
            else:
                counter.add()
                node = _Node(name)
                stack[-1].children.append(node)
                if not match.group("empty"):
                    stack.append(node)
    add_text(_unescape(document[position:]))
    if not root.children:
        raise ReportError("The report is not XML.")
    return root.children[0]


# --- the tree to a report -----------------------------------------------------------------------


def _find_feedback(node: _Node, depth: int = 0) -> _Node | None:
    """<feedback>, at the root or (as some reporters wrap it, in an xs:schema) below it."""
    if node.name == "feedback":
        return node
    for child in node.children if depth < 3 else ():
        found = _find_feedback(child, depth + 1)
        if found is not None:
            return found
    return None


def _report(top: _Node) -> AggregateReport:
    root = _find_feedback(top)
    if root is None:
        raise ReportError(f"The XML is not a DMARC aggregate report: its root element is <{top.name}>, not <feedback>.")
    metadata = root.child("report_metadata")
    published = root.child("policy_published")
    if metadata is None or published is None:
        missing = "report_metadata" if metadata is None else "policy_published"
        raise ReportError(f"The report has no <{missing}>.")
    records = root.all("record")
    if len(records) > MAX_ROWS:
        raise ReportError(f"The report has {len(records)} records; at most {MAX_ROWS} are read.")
    return AggregateReport(
        org_name=metadata.value("org_name"),
        email=metadata.value("email"),
        report_id=metadata.value("report_id"),
        begin=_number(metadata.value("date_range", "begin"), "date_range begin"),
        end=_number(metadata.value("date_range", "end"), "date_range end"),
        policy=_policy(published),
        rows=tuple(_row(record, i) for i, record in enumerate(records, 1)),
        extra_contact_info=metadata.value("extra_contact_info"),
        errors=tuple(e.value() for e in metadata.all("error")),
        version=root.value("version"),
    )


def _policy(node: _Node) -> PolicyPublished:
    pct = node.value("pct")
    return PolicyPublished(
        domain=_domain(node.value("domain")),
        adkim=_enum(node.value("adkim")), aspf=_enum(node.value("aspf")),
        p=_enum(node.value("p")), sp=_enum(node.value("sp")), np=_enum(node.value("np")),
        pct=_number(pct, "pct") if pct else None,
        fo=node.value("fo"),
        testing=_enum(node.value("testing")) in ("y", "yes", "true", "1"),
    )


def _row(record: _Node, index: int) -> ReportRow:
    row = record.child("row") or _Node("row")
    evaluated = row.child("policy_evaluated") or _Node("policy_evaluated")
    identifiers = record.child("identifiers") or _Node("identifiers")
    results = record.child("auth_results") or _Node("auth_results")
    count = row.value("count")
    return ReportRow(
        source_ip=row.value("source_ip"),
        count=_number(count, f"record {index} count") if count else 1,
        disposition=_enum(evaluated.value("disposition")),
        dkim=_enum(evaluated.value("dkim")),
        spf=_enum(evaluated.value("spf")),
        header_from=_domain(identifiers.value("header_from")),
        envelope_from=_domain(identifiers.value("envelope_from")),
        envelope_to=_domain(identifiers.value("envelope_to")),
        reasons=tuple((r.value("type").lower(), r.value("comment")) for r in evaluated.all("reason")),
        dkim_results=tuple(
            AuthResult(_domain(d.value("domain")), _enum(d.value("result")), selector=d.value("selector"))
            for d in results.all("dkim")
        ),
        spf_results=tuple(
            AuthResult(_domain(s.value("domain")), _enum(s.value("result")), scope=_enum(s.value("scope")))
            for s in results.all("spf")
        ),
    )


def _enum(text: str) -> str:
    return text.strip().lower()


def _domain(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _number(text: str, what: str) -> int:
    try:
        return int(float(text.strip())) if "." in text else int(text.strip())
    except (ValueError, OverflowError):
        raise ReportError(f"The report's {what} is {text!r}, not a number.") from None
