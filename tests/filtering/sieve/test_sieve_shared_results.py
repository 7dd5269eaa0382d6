"""One message, several recipients: the runs share the results of the tests that read only the
message (SieveMessage.shared), and nothing that depends on the recipient, the variables or
the run's own header edits."""
from __future__ import annotations

from postoffice.filtering.sieve import FileInto, SieveMessage, compile_script, run_script
from postoffice.filtering.sieve.message import SharedResults

RAW = (b"From: Boss <boss@example.org>\r\nTo: team@example.com\r\nSubject: weekly report 17\r\n"
       b"Date: Mon, 7 Dec 2026 09:00:00 +0100\r\n\r\nPlease unsubscribe from this newsletter.\r\n")
OTHER = RAW.replace(b"weekly report 17", b"something else").replace(b"boss@", b"intern@")

SCRIPT = compile_script(r"""require ["fileinto", "envelope", "subaddress", "variables", "body", "editheader",
         "imap4flags"];
if header :matches "subject" "weekly report *" { set "week" "${1}"; }
if envelope :detail "to" "reports" { fileinto "Reports/${week}"; }
if address :localpart :is "from" "boss" { addflag "\\Flagged"; }
if body :contains "unsubscribe" { addflag "$List"; }
if hasflag "$List" { fileinto "Lists"; }
""")


def run(raw: bytes, recipient: str, shared: SharedResults | None) -> list[object]:
    message = SieveMessage(raw, envelope_from="boss@example.org", envelope_to=recipient, shared=shared)
    return run_script(SCRIPT, message).actions


def mailboxes(actions: list[object]) -> list[str]:
    return [a.mailbox for a in actions if isinstance(a, FileInto)]


def test_shared_runs_decide_as_separate_runs() -> None:
    shared: SharedResults = {}
    recipients = ("alice+reports@example.com", "bob@example.com", "carol+reports@example.com")
    together = [run(RAW, r, shared) for r in recipients]
    assert together == [run(RAW, r, None) for r in recipients]
    # the recipient's own test (envelope :detail) still decides per recipient, and the
    # :matches capture reached ${week} in the runs that reused the header test
    assert [mailboxes(actions) for actions in together] == [["Reports/17", "Lists"], ["Lists"],
                                                            ["Reports/17", "Lists"]]
    # header, address and body were remembered; envelope and hasflag were not
    assert sorted(call.name for call, _, _ in shared.values()) == ["address", "body", "header"]  # type: ignore[attr-defined]


def test_a_second_run_reads_the_shared_results() -> None:
    """The dict is for one message: handed another message, the run answers from it, which
    shows that the second recipient's run does not test the message again."""
    shared: SharedResults = {}
    run(RAW, "alice+reports@example.com", shared)
    assert FileInto("Lists", ("\\Flagged", "$List")) in run(OTHER, "alice+reports@example.com", shared)
    assert mailboxes(run(OTHER, "alice+reports@example.com", shared)) == ["Reports/17", "Lists"]
    assert run(OTHER, "alice+reports@example.com", None) == [FileInto("Reports/"), FileInto("Lists", ("$List",))]


def test_header_edits_end_the_sharing_for_that_run() -> None:
    script = compile_script("""require ["fileinto", "editheader"];
if header :contains "subject" "weekly" { addheader "X-Seen" "yes"; }
if header :is "x-seen" "yes" { fileinto "Edited"; }
if header :contains "subject" "weekly" { fileinto "Weekly"; }
""")
    shared: SharedResults = {}
    first = run_script(script, SieveMessage(RAW, envelope_to="a@example.com", shared=shared))
    assert mailboxes(first.actions) == ["Edited", "Weekly"]
    # only the test before the edit was shared: those after it saw the run's own header
    assert [call.line for call, _, _ in shared.values()] == [2]  # type: ignore[attr-defined]
    second = run_script(script, SieveMessage(RAW, envelope_to="b@example.com", shared=shared))
    assert second.actions == first.actions and second.message == first.message


def test_tests_with_variables_are_not_shared() -> None:
    script = compile_script("""require ["fileinto", "variables", "envelope"];
if envelope :matches "to" "*@*" { set "who" "${1}"; }
if header :contains "to" "${who}" { fileinto "Mine"; }
""")
    shared: SharedResults = {}
    raw = RAW.replace(b"To: team@", b"To: alice@")
    assert mailboxes(run_script(script, SieveMessage(raw, envelope_to="alice@example.com", shared=shared)).actions) \
        == ["Mine"]
    assert mailboxes(run_script(script, SieveMessage(raw, envelope_to="bob@example.com", shared=shared)).actions) == []
    assert shared == {}
