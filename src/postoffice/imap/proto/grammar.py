"""The arguments of each IMAP command: from a :class:`Reader` to a typed ``commands`` dataclass.

RFC 9051 §6 and §9 (IMAP4rev2), RFC 3501 (IMAP4rev1), and the extensions listed in
:mod:`postoffice.imap.proto.commands`. :func:`parse_command` reads a command name (and the
command after ``UID``) and its arguments, and raises
:class:`~postoffice.imap.proto.tokens.ParseError` for anything the grammar does not allow; the
parser turns that into a tagged BAD (or NO, for an unknown CHARSET or an invalid mailbox name).

Implementation notes:

- Command names are case-insensitive atoms. Unknown commands are BAD, as are extensions we do
  not implement (CATENATE, UTF8 APPEND data, FETCH PARTIAL of RFC 9394, LIST options of
  RFC 8440). The extension commands SORT, THREAD, CANCELUPDATE, QUOTA, ACL, NOTIFY and COMPRESS
  are parsed by :mod:`postoffice.imap.proto.grammar_ext` and registered here.
- Commands without arguments reject trailing text; every command must end where its grammar
  ends (RFC 9051 §9: arguments are separated by exactly one space).
- Semantic checks that need no session state are made here: VANISHED only with UID FETCH and
  CHANGEDSINCE (RFC 7162 §3.2.6), RECURSIVEMATCH never alone or only with REMOTE (RFC 5258
  §3), no repeated SELECT parameter. Checks that need the session (state, enabled extensions,
  mailbox size) belong to the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from postoffice.imap.proto import commands as c
from postoffice.imap.proto import grammar_ext as x
from postoffice.imap.proto.fetch_items import parse_fetch_items
from postoffice.imap.proto.search_keys import parse_return_options, parse_search_program
from postoffice.imap.proto.tokens import MAX_NUMBER64, Reader

__all__ = [
    "COMMAND_NAMES",
    "STATUS_ITEMS",
    "parse_command",
    "parse_command_text",
]

STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
        "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID",
    }
)  # fmt: skip
_LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
_SPECIAL_USE = {
    a.upper(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
# Checked for shape only: the SASL mechanism decodes it and says what is wrong.
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
_SPECIAL_USE_ATTR = re.compile(rb"\\[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_STORE_ITEM = re.compile(rb"[+-]?FLAGS(?:\.SILENT)?", re.IGNORECASE)

_Handler = Callable[[Reader, bool], c.CommandArgs]


def parse_command(reader: Reader) -> tuple[str, c.CommandArgs]:
    """The command at the reader (just after ``tag SP``): its upper-cased name and arguments."""
    start = reader.pos
    name = reader.keyword()
    uid = name == "UID"
    if uid:
        reader.sp()
        sub = reader.keyword()
        if sub not in _UID_COMMANDS:
            reader.pos = start
            raise reader.error(f"Unknown command UID {sub}")
        name = f"UID {sub}"
        handler = _UID_COMMANDS[sub]
    else:
        found = _COMMANDS.get(name)
        if found is None:
            reader.pos = start
            raise reader.error(f"Unknown command {name}")
        handler = found
    args = handler(reader, uid)
    reader.end()
    return name, args


# --- commands without arguments ---------------------------------------------------------------


def _no_args(cls: Callable[[], c.CommandArgs]) -> _Handler:
    def parse(reader: Reader, uid: bool) -> c.CommandArgs:
        reader.end()
        return cls()

    return parse


# --- any state / not authenticated ------------------------------------------------------------


def _enable(reader: Reader, uid: bool) -> c.Enable:
    caps = []
    reader.sp()
    caps.append(reader.keyword())
    while reader.try_sp():
        caps.append(reader.keyword())
    return c.Enable(tuple(dict.fromkeys(caps)))


def _id(reader: Reader, uid: bool) -> c.Id:
    """``ID ("name" "value" ...)`` or ``ID NIL`` (RFC 2971 §3.1; the list may be empty)."""
    reader.sp()
    if reader.peek() != b"(":
        if reader.nstring() is not None:
            raise reader.error("Expected a parameter list or NIL")
        return c.Id(None)
    reader.expect(b"(")
    params: list[tuple[str, str | None]] = []
    if not reader.try_char(b")"):
        while True:
            key = reader.text_of(reader.string())
            reader.sp()
            value = reader.nstring()
            params.append((key, None if value is None else reader.text_of(value)))
            if reader.try_char(b")"):
                break
            reader.sp()
    return c.Id(tuple(params))


def _authenticate(reader: Reader, uid: bool) -> c.Authenticate:
    reader.sp()
    mechanism = reader.keyword()
    initial: bytes | None = None
    if reader.try_sp():
        initial = reader.match(_BASE64, "a base64 initial response or =").group()
    return c.Authenticate(mechanism, initial)


def _login(reader: Reader, uid: bool) -> c.Login:
    reader.sp()
    user = reader.astring_text()
    reader.sp()
    # A password that is not UTF-8 is a wrong password, not a syntax error: it is counted as a
    # failed login (surrogateescape keeps its bytes; the directory refuses such a string).
    return c.Login(user, reader.astring().decode("utf-8", "surrogateescape"))


# --- authenticated ----------------------------------------------------------------------------


def _select(reader: Reader, uid: bool, *, read_only: bool) -> c.Select:
    reader.sp()
    mailbox = reader.mailbox()
    condstore = False
    qresync: c.QresyncParams | None = None
    if reader.try_sp():
        reader.expect(b"(")
        seen: set[str] = set()
        while True:
            param = reader.keyword()
            if param in seen:
                raise reader.error(f"{param} given twice")
            seen.add(param)
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":
                reader.sp()
                qresync = _qresync(reader)
            else:
                raise reader.error(f"Unknown SELECT parameter {param}")
            if reader.try_char(b")"):
                break
            reader.sp()
    return c.Select(mailbox, read_only, condstore, qresync)


def _qresync(reader: Reader) -> c.QresyncParams:
    """``"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"``."""
    reader.expect(b"(")
    uidvalidity = reader.nz_number()
    reader.sp()
    modseq = reader.nz_number(MAX_NUMBER64)
    known_uids = None
    seq_match = None
    if reader.try_sp():
        if reader.peek() != b"(":
            known_uids = reader.sequence_set()
            if not reader.try_sp():
                reader.expect(b")")
                return c.QresyncParams(uidvalidity, modseq, known_uids)
        reader.expect(b"(")
        seqs = reader.sequence_set()
        reader.sp()
        uids = reader.sequence_set()
        reader.expect(b")")
        seq_match = (seqs, uids)
    reader.expect(b")")
    return c.QresyncParams(uidvalidity, modseq, known_uids, seq_match)


def _create(reader: Reader, uid: bool) -> c.Create:
    reader.sp()
    mailbox = reader.mailbox()
    use: list[str] = []
    if reader.try_sp():
        reader.expect(b"(")
        while True:
            param = reader.keyword()
            if param != "USE":
                raise reader.error(f"Unknown CREATE parameter {param}")
            reader.sp()
            attrs = reader.paren_list(
                lambda: reader.match(_SPECIAL_USE_ATTR, "a special-use attribute").group(),
                allow_empty=True,
            )
            for raw in attrs:
                attr = raw.decode("ascii")
                use.append(_SPECIAL_USE.get(attr.upper(), attr))
            if reader.try_char(b")"):
                break
            reader.sp()
    return c.Create(mailbox, tuple(dict.fromkeys(use)))


def _one_mailbox(cls: type[c.Delete | c.Subscribe | c.Unsubscribe]) -> _Handler:
    def parse(reader: Reader, uid: bool) -> c.CommandArgs:
        reader.sp()
        return cls(reader.mailbox())

    return parse


def _rename(reader: Reader, uid: bool) -> c.Rename:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    return c.Rename(old, reader.mailbox())


def _reference(reader: Reader) -> str:
    """LIST's reference: a ``mailbox`` in the grammar, read like a pattern (Dovecot accepts
    wildcards there too; they match nothing special in a reference)."""
    return reader.list_mailbox()


def _list(reader: Reader, uid: bool) -> c.List:
    reader.sp()
    extended = False
    selection: list[str] = []
    if reader.peek() == b"(":
        extended = True
        selection = reader.paren_list(reader.keyword, allow_empty=True)
        for option in selection:
            if option not in _LIST_SELECTION:
                raise reader.error(f"Unknown LIST selection option {option}")
        if "RECURSIVEMATCH" in selection and not set(selection) - {"RECURSIVEMATCH", "REMOTE"}:
            raise reader.error("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3
        reader.sp()
    reference = _reference(reader)
    reader.sp()
    if reader.peek() == b"(":
        extended = True
        patterns = reader.paren_list(reader.list_mailbox)
    else:
        patterns = [reader.list_mailbox()]
    return_options: list[str] = []
    return_status: tuple[str, ...] | None = None
    if reader.try_sp():
        extended = True
        if reader.keyword() != "RETURN":
            raise reader.error("Expected RETURN")
        reader.sp()
        reader.expect(b"(")
        if not reader.try_char(b")"):
            while True:
                option = reader.keyword()
                if option == "STATUS":
                    reader.sp()
                    return_status = _status_items(reader)
                elif option in _LIST_RETURN:
                    return_options.append(option)
                else:
                    raise reader.error(f"Unknown LIST return option {option}")
                if reader.try_char(b")"):
                    break
                reader.sp()
    return c.List(
        reference,
        tuple(patterns),
        tuple(dict.fromkeys(selection)),
        tuple(dict.fromkeys(return_options)),
        return_status,
        extended,
    )


def _lsub(reader: Reader, uid: bool) -> c.Lsub:
    reader.sp()
    reference = _reference(reader)
    reader.sp()
    return c.Lsub(reference, reader.list_mailbox())


def _status_items(reader: Reader) -> tuple[str, ...]:
    items = reader.paren_list(reader.keyword)
    for item in items:
        if item not in STATUS_ITEMS:
            raise reader.error(f"Unknown STATUS item {item}")
    return tuple(dict.fromkeys(items))


def _status(reader: Reader, uid: bool) -> c.Status:
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return c.Status(mailbox, _status_items(reader))


def _append(reader: Reader, uid: bool) -> c.Append:
    """``APPEND mailbox 1*(SP [flag-list SP] [date-time SP] literal)`` (RFC 3502, RFC 3516)."""
    reader.sp()
    mailbox = reader.mailbox()
    messages: list[c.AppendMessage] = []
    while True:
        reader.sp()
        flags: tuple[str, ...] = ()
        if reader.peek() == b"(":
            flags = reader.flag_list()
            reader.sp()
        internal_date = None
        if reader.peek() == b'"':
            internal_date = reader.date_time()
            reader.sp()
        utf8 = False
        if not reader.literal_next():
            word = reader.text[reader.pos : reader.pos + 9].upper()
            if word.startswith(b"UTF8"):  # RFC 6855 §4: UTF8 SP "(" literal8 ")"
                reader.keyword()
                reader.sp()
                reader.expect(b"(")
                utf8 = True
            elif word.startswith(b"CATENATE"):
                raise reader.error("APPEND extension not supported")
            else:
                raise reader.error("Expected the message as a literal")
        data, binary = reader.literal(binary_ok=True)
        if utf8:
            reader.expect(b")")
        messages.append(c.AppendMessage(flags, internal_date, data, binary))
        if reader.at_end():
            return c.Append(mailbox, tuple(messages))


# --- selected ---------------------------------------------------------------------------------


def _uid_expunge(reader: Reader, uid: bool) -> c.UidExpunge:
    reader.sp()
    return c.UidExpunge(reader.sequence_set())


def _search(reader: Reader, uid: bool) -> c.Search:
    reader.sp()
    return_options: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    if reader.text[reader.pos : reader.pos + 7].upper() == b"RETURN ":
        reader.pos += 7
        return_options, partial = parse_return_options(reader)
        reader.sp()
    charset, key = parse_search_program(reader)
    return c.Search(charset, key, return_options, uid, partial)


def _fetch(reader: Reader, uid: bool) -> c.Fetch:
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    items = parse_fetch_items(reader)
    changed_since: int | None = None
    vanished = False
    if reader.try_sp():
        reader.expect(b"(")
        while True:
            start = reader.pos
            modifier = reader.keyword()
            if modifier == "CHANGEDSINCE" and changed_since is None:
                reader.sp()
                changed_since = reader.number(MAX_NUMBER64)
            elif modifier == "VANISHED" and not vanished:
                vanished = True
            else:
                reader.pos = start
                raise reader.error(f"Unknown or repeated FETCH modifier {modifier}")
            if reader.try_char(b")"):
                break
            reader.sp()
        if vanished and (not uid or changed_since is None):
            raise reader.error("VANISHED needs UID FETCH and CHANGEDSINCE")  # RFC 7162 §3.2.6
    return c.Fetch(sequence_set, items, uid, changed_since, vanished)


def _store(reader: Reader, uid: bool) -> c.Store:
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    unchanged_since: int | None = None
    if reader.peek() == b"(":
        reader.pos += 1
        if reader.keyword() != "UNCHANGEDSINCE":
            raise reader.error("Unknown STORE modifier")
        reader.sp()
        unchanged_since = reader.number(MAX_NUMBER64)
        reader.expect(b")")
        reader.sp()
    item = reader.word(_STORE_ITEM, "FLAGS, +FLAGS or -FLAGS")
    mode: Literal["replace", "add", "remove"] = (
        "add" if item[0] == "+" else "remove" if item[0] == "-" else "replace"
    )
    silent = item.endswith(".SILENT")
    reader.sp()
    if reader.peek() == b"(":
        flags = reader.flag_list()
    else:
        listed = [reader.flag()]
        while reader.try_sp():
            listed.append(reader.flag())
        flags = tuple(dict.fromkeys(listed))
    return c.Store(sequence_set, mode, silent, flags, unchanged_since, uid)


def _copy(reader: Reader, uid: bool) -> c.Copy:
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    return c.Copy(sequence_set, reader.mailbox(), uid)


def _move(reader: Reader, uid: bool) -> c.Move:
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    return c.Move(sequence_set, reader.mailbox(), uid)


_COMMANDS: dict[str, _Handler] = {
    "CAPABILITY": _no_args(c.Capability),
    "NOOP": _no_args(c.Noop),
    "LOGOUT": _no_args(c.Logout),
    "STARTTLS": _no_args(c.StartTls),
    "NAMESPACE": _no_args(c.Namespace),
    "IDLE": _no_args(c.Idle),
    "CHECK": _no_args(c.Check),
    "CLOSE": _no_args(c.Close),
    "UNSELECT": _no_args(c.Unselect),
    "EXPUNGE": _no_args(c.Expunge),
    "ENABLE": _enable,
    "ID": _id,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": lambda r, u: _select(r, u, read_only=False),
    "EXAMINE": lambda r, u: _select(r, u, read_only=True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _move,
    # extensions (grammar_ext)
    "SORT": x.sort,
    "THREAD": x.thread,
    "CANCELUPDATE": x.cancel_update,
    "GETQUOTA": x.getquota,
    "GETQUOTAROOT": x.getquotaroot,
    "SETQUOTA": x.setquota,
    "SETACL": x.setacl,
    "DELETEACL": x.deleteacl,
    "GETACL": x.getacl,
    "LISTRIGHTS": x.listrights,
    "MYRIGHTS": x.myrights,
    "NOTIFY": x.notify,
    "COMPRESS": x.compress,
}
_UID_COMMANDS: dict[str, _Handler] = {
    "COPY": _copy,
    "MOVE": _move,
    "FETCH": _fetch,
    "SEARCH": _search,
    "STORE": _store,
    "EXPUNGE": _uid_expunge,
    "SORT": x.sort,
    "THREAD": x.thread,
}
COMMAND_NAMES = frozenset(_COMMANDS) | {f"UID {name}" for name in _UID_COMMANDS}


def parse_command_text(line: str | bytes, *, utf8: bool = False) -> tuple[str, c.CommandArgs]:
    """A command without tag or literals, for tests and tools: ``parse_command_text("NOOP")``."""
    reader = Reader.from_line(line.encode() if isinstance(line, str) else line, utf8=utf8)
    return parse_command(reader)
