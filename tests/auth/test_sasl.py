"""SASL PLAIN and LOGIN exchanges, driven the way SMTP, IMAP and POP3 drivers drive them."""
from __future__ import annotations

import base64

import pytest

from postoffice.auth.sasl import (
    MAX_RESPONSE_LENGTH,
    MECHANISMS,
    AuthorizationRefused,
    EncryptionRequired,
    SaslCancelled,
    SaslChallenge,
    SaslCredentials,
    SaslError,
    UnsupportedMechanism,
    decode_initial_response,
    decode_response,
    encode_challenge,
    mechanisms_offered,
    plaintext_auth_allowed,
    start_sasl,
)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def run(mechanism: str, initial: bytes | None, lines: list[bytes]) -> tuple[list[bytes], object]:
    """Play a whole exchange from the wire: ``initial`` and ``lines`` are base64 text as a client
    sends them. Returns the decoded challenges sent and the final outcome or the error raised."""
    challenges: list[bytes] = []
    try:
        ir = decode_initial_response(initial) if initial is not None else None
        exchange = start_sasl(mechanism, ir)
        outcome = exchange.begin()
        replies = iter(lines)
        while isinstance(outcome, SaslChallenge):
            challenges.append(base64.b64decode(encode_challenge(outcome.data)))
            outcome = exchange.step(decode_response(next(replies)))
        assert exchange.done
        return challenges, outcome
    except SaslError as error:
        return challenges, error


ALICE = SaslCredentials("alice@example.org", "s3cret")

EXCHANGES = [
    # (scenario, mechanism, initial response, client lines, challenges, outcome)
    ("plain_with_initial_response", "PLAIN", b64(b"\0alice@example.org\0s3cret"), [],
     [], ALICE),
    ("plain_after_empty_challenge", "PLAIN", None, [b64(b"\0alice@example.org\0s3cret")],
     [b""], ALICE),
    ("plain_lowercase_mechanism", "plain", b64(b"\0alice@example.org\0s3cret"), [], [], ALICE),
    ("plain_line_with_crlf", "PLAIN", None, [b64(b"\0alice@example.org\0s3cret") + b"\r\n"],
     [b""], ALICE),
    ("plain_authzid_equal_to_authcid", "PLAIN",
     b64(b"alice@example.org\0alice@example.org\0s3cret"), [], [],
     SaslCredentials("alice@example.org", "s3cret", "alice@example.org")),
    ("plain_utf8_password", "PLAIN", b64("\0bob\0pässwörd€".encode()), [], [],
     SaslCredentials("bob", "pässwörd€")),
    ("plain_password_with_spaces", "PLAIN", b64(b"\0bob\0 a b "), [], [],
     SaslCredentials("bob", " a b ")),
    ("plain_authzid_mismatch", "PLAIN", b64(b"admin\0alice\0s3cret"), [], [],
     AuthorizationRefused),
    ("plain_empty_initial_response", "PLAIN", b"=", [], [], SaslError),
    ("plain_missing_nuls", "PLAIN", b64(b"alice s3cret"), [], [], SaslError),
    ("plain_one_nul", "PLAIN", b64(b"alice\0s3cret"), [], [], SaslError),
    ("plain_three_nuls", "PLAIN", b64(b"\0alice\0s3cret\0"), [], [], SaslError),
    ("plain_empty_authcid", "PLAIN", b64(b"\0\0s3cret"), [], [], SaslError),
    ("plain_empty_password", "PLAIN", b64(b"\0alice\0"), [], [], SaslError),
    ("plain_non_utf8_user", "PLAIN", b64(b"\0al\xffice\0s3cret"), [], [], SaslError),
    # A password that is not UTF-8 is a wrong password (the directory refuses it), so that the
    # driver answers and counts it as a failed login, not as a malformed exchange.
    ("plain_non_utf8_password", "PLAIN", b64(b"\0alice\0\xc0\xaf"), [], [],
     SaslCredentials("alice", b"\xc0\xaf".decode("utf-8", "surrogateescape"))),
    ("plain_surrogate_in_password", "PLAIN", b64(b"\0alice\0\xed\xa0\x80"), [], [],
     SaslCredentials("alice", b"\xed\xa0\x80".decode("utf-8", "surrogateescape"))),
    ("plain_cancelled", "PLAIN", None, [b"*"], [b""], SaslCancelled),
    ("plain_bad_base64", "PLAIN", None, [b"!!!!"], [b""], SaslError),
    ("plain_base64_without_padding", "PLAIN", None, [b"AGFsaWNlAHMzY3JldA"], [b""], SaslError),
    ("plain_base64_with_space", "PLAIN", None, [b"AGFs aWNl"], [b""], SaslError),
    ("plain_star_as_initial_response", "PLAIN", b"*", [], [], SaslError),
    ("login_two_challenges", "LOGIN", None, [b64(b"alice@example.org"), b64(b"s3cret")],
     [b"Username:", b"Password:"], ALICE),
    ("login_user_as_initial_response", "LOGIN", b64(b"alice@example.org"), [b64(b"s3cret")],
     [b"Password:"], ALICE),
    ("login_cancel_at_username", "LOGIN", None, [b"*"], [b"Username:"], SaslCancelled),
    ("login_cancel_at_password", "LOGIN", None, [b64(b"alice"), b"*"],
     [b"Username:", b"Password:"], SaslCancelled),
    ("login_empty_username", "LOGIN", None, [b""], [b"Username:"], SaslError),
    ("login_empty_initial_response", "LOGIN", b"=", [], [], SaslError),
    ("login_empty_password", "LOGIN", None, [b64(b"alice"), b""],
     [b"Username:", b"Password:"], SaslError),
    ("login_nul_in_username", "LOGIN", None, [b64(b"alice\0admin")], [b"Username:"], SaslError),
    ("login_non_utf8_password", "LOGIN", None, [b64(b"alice"), b64(b"\xff\xfe")],
     [b"Username:", b"Password:"], SaslCredentials("alice", "\udcff\udcfe")),
    ("login_bad_base64_password", "LOGIN", None, [b64(b"alice"), b"c2Vj=mV0"],
     [b"Username:", b"Password:"], SaslError),
    ("unknown_mechanism", "CRAM-MD5", None, [], [], UnsupportedMechanism),
    ("unknown_mechanism_with_ir", "SCRAM-SHA-256", b64(b"n,,n=alice,r=abc"), [], [],
     UnsupportedMechanism),
]


@pytest.mark.parametrize(("mechanism", "initial", "lines", "challenges", "expected"),
                         [case[1:] for case in EXCHANGES], ids=[case[0] for case in EXCHANGES])
def test_exchange(mechanism: str, initial: bytes | None, lines: list[bytes],
                  challenges: list[bytes], expected: object) -> None:
    sent, outcome = run(mechanism, initial, lines)
    assert sent == challenges
    if isinstance(expected, type):
        assert type(outcome) is expected, outcome
        assert str(outcome)
    else:
        assert outcome == expected


def test_errors_say_why() -> None:
    _, outcome = run("PLAIN", b64(b"admin\0alice\0pw"), [])
    assert isinstance(outcome, AuthorizationRefused)
    assert "alice" in outcome.reason and "admin" in outcome.reason
    _, outcome = run("PLAIN", b64(b"alice\0pw"), [])
    assert isinstance(outcome, SaslError) and "NUL" in outcome.reason


def test_credentials_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(ALICE)
    assert "alice@example.org" in repr(ALICE)


@pytest.mark.parametrize(("line", "decoded"), [
    (b"", b""),
    (b"\r\n", b""),
    (b"=", b""),
    (b"*", None),
    (b"*\r\n", None),
    (b"YWJj", b"abc"),
    (b"YWI=", b"ab"),
    (b"YQ==\r\n", b"a"),
])
def test_decode_response(line: bytes, decoded: bytes | None) -> None:
    assert decode_response(line) == decoded


@pytest.mark.parametrize("line", [b"YWJ", b"YW=j", b"Y\x00Fj", b" YWJj", b"YWJj ", b"**",
                                  b"YWJj\r\nYWJj", b"A" * (MAX_RESPONSE_LENGTH + 4)])
def test_decode_response_refuses_malformed(line: bytes) -> None:
    with pytest.raises(SaslError):
        decode_response(line)


def test_decode_response_accepts_the_longest_allowed() -> None:
    assert decode_response(b"A" * MAX_RESPONSE_LENGTH) == bytes(MAX_RESPONSE_LENGTH * 3 // 4)


def test_encode_challenge() -> None:
    assert encode_challenge(b"") == b""
    assert encode_challenge(b"Username:") == b"VXNlcm5hbWU6"


@pytest.mark.parametrize(("tls", "loopback", "allowed", "offered"), [
    (True, False, False, MECHANISMS),
    (True, True, False, MECHANISMS),
    (False, True, True, MECHANISMS),
    (False, True, False, ()),
    (False, False, True, ()),
    (False, False, False, ()),
])
def test_mechanisms_offered(tls: bool, loopback: bool, allowed: bool,
                            offered: tuple[str, ...]) -> None:
    assert mechanisms_offered(tls, loopback, allowed) == offered
    assert plaintext_auth_allowed(tls, loopback, allowed) == bool(offered)


def test_known_mechanism_not_offered_needs_encryption() -> None:
    with pytest.raises(EncryptionRequired):
        start_sasl("PLAIN", None, offered=mechanisms_offered(False, False, True))
    with pytest.raises(UnsupportedMechanism):
        start_sasl("XOAUTH2", None, offered=())


def test_driver_bugs_raise_runtime_error() -> None:
    exchange = start_sasl("LOGIN", None)
    with pytest.raises(RuntimeError):
        exchange.step(b"alice")  # before begin()
    exchange.begin()
    with pytest.raises(RuntimeError):
        exchange.begin()
    exchange.step(b"alice")
    assert isinstance(exchange.step(b"pw"), SaslCredentials)
    with pytest.raises(RuntimeError):
        exchange.step(b"more")


def test_an_error_ends_the_exchange() -> None:
    exchange = start_sasl("PLAIN", None)
    exchange.begin()
    with pytest.raises(SaslError):
        exchange.step(b"no nuls")
    assert exchange.done
    with pytest.raises(RuntimeError):
        exchange.step(b"\0alice\0pw")
