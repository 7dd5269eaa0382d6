"""`check domain`: the DKIM keys that sign the domain's mail here, as DNS publishes them.

Findings: dkim-missing, dkim-mismatch (the published key is not ours), dkim-weak-key (RSA under
1024 bits), dkim-testing (t=y), and dkim-probe: a message signed by the server's own signer
(queue/signing.py) verified against live DNS by mailauth/dkim.py, as a receiver would. The probe
runs only when every key record matched: otherwise its failure would repeat what is said.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives import serialization

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.domain_mx import dns_failed
from postoffice.mailauth.dkim import verify_dkim
from postoffice.mailauth.dkim_crypto import (
    DkimKeyError,
    KeyTooShort,
    PublicKey,
    SigningKey,
    parse_key_record,
)
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.queue.signing import MessageSigner

E, W, OK = Severity.ERROR, Severity.WARNING, Severity.OK


async def check_dkim(resolver: Resolver, domain: str, signer: MessageSigner) -> list[Finding]:
    found = signer.signature_set(domain)
    if not found.keys:
        return [Finding("dkim-missing", E, f"Mail from {domain} leaves without a DKIM signature: {found.problem}.",
                        f"Make keys with `postoffice dkim rotate {domain}` and publish the records "
                        f"`postoffice domain records {domain}` shows.", subject=domain)]
    findings = []
    for selector, key in found.keys:
        findings += await _check_selector(resolver, domain, selector, key)
    if not any(f.severity is E for f in findings):
        findings += await _probe(resolver, domain, signer)
    return findings


async def _check_selector(resolver: Resolver, domain: str, selector: str, key: SigningKey) -> list[Finding]:
    name = f"{selector}._domainkey.{domain}"
    publish = f"Publish the TXT record `postoffice domain records {domain}` shows for {name}."
    try:
        records = (await resolver.txt(name)).records
    except DnsTemporaryError as error:
        return [dns_failed(f"the DKIM key {name}", error, name)]
    if not records:
        return [Finding("dkim-missing", E, f"The DKIM key {name} that signs {domain}'s mail is not published, so "
                        "receivers cannot verify the signature.", publish, subject=name)]
    problems = []
    for record in records:
        try:
            published = parse_key_record(record)
        except KeyTooShort as error:
            return [Finding("dkim-weak-key", E, f"The DKIM key published at {name} is too weak: {error}; "
                            "receivers ignore it.", f"Replace the record at {name} by our 2048-bit key: "
                            f"`postoffice domain records {domain}` shows it.", subject=name)]
        except DkimKeyError as error:
            problems.append(str(error))
            continue
        if _public_bytes(published.public_key) != _public_bytes(key.public_key()):
            problems.append("it holds a different key from the one this server signs with")
            continue
        if published.testing:
            return [Finding("dkim-testing", W, f"The DKIM key at {name} is marked t=y (testing), so receivers "
                            "treat failed signatures like unsigned mail and DMARC gets weaker.",
                            f"Remove t=y from the record at {name} once signatures verify.", subject=name)]
        return [Finding("dkim-mismatch", OK, f"The DKIM key at {name} is the one this server signs with.",
                        subject=name)]
    return [Finding("dkim-mismatch", E, f"The record at {name} is not the DKIM key this server signs with "
                    f"({'; '.join(problems)}), so signatures fail.", publish, subject=name)]


def _public_bytes(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def _probe(resolver: Resolver, domain: str, signer: MessageSigner) -> list[Finding]:
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    message = (f"From: <postmaster@{domain}>\r\nTo: <postmaster@{domain}>\r\nDate: {when}\r\n"
               f"Subject: postoffice DKIM probe\r\nMessage-ID: <probe.{time.time_ns()}@{domain}>\r\n\r\n"
               "This message is never sent: `check domain` verifies its signatures.\r\n").encode()
    signed = await signer.sign(message, f"postmaster@{domain}")
    results = await verify_dkim(resolver, signed)
    failed = [r for r in results if r.result != "pass"]
    if not results or failed:
        why = "; ".join(f"{r.selector}: {r.result} ({r.problem})" for r in failed) or "no signature was made"
        return [Finding("dkim-probe", E, f"A probe message signed here for {domain} does not verify against "
                        f"live DNS: {why}.", f"Publish the records `postoffice domain records {domain}` shows "
                        "and check again.", subject=domain)]
    selectors = ", ".join(r.selector for r in results)
    return [Finding("dkim-probe", OK, f"A probe message signed here for {domain} verifies against live DNS "
                    f"(selectors {selectors}).", subject=domain)]
