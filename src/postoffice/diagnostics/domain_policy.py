"""`check domain`: DMARC, MTA-STS and postmaster@: the domain's policies toward other servers.

Findings: dmarc-missing, dmarc-syntax, dmarc-none (and what the policy means when it is fine),
mta-sts-mismatch (the policy's mx: patterns against the MX hosts; fetched by queue/mta_sts.py
exactly as delivery fetches it), postmaster-missing (RFC 5321 §4.5.1: resolved by the directory).
"""

from __future__ import annotations

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.domain_mx import MxHost, dns_failed
from postoffice.directory import Directory
from postoffice.mailauth.dmarc import parse_dmarc_record
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.queue.mta_sts import MtaSts

E, W, OK = Severity.ERROR, Severity.WARNING, Severity.OK
_MEANING = {
    "none": "receivers deliver mail that fails DMARC as usual and only report it",
    "quarantine": "receivers put mail that fails DMARC in spam",
    "reject": "receivers refuse mail that fails DMARC",
}


async def check_dmarc(resolver: Resolver, domain: str) -> list[Finding]:
    name = f"_dmarc.{domain}"
    try:
        records = [r for r in (await resolver.txt(name)).records if r.strip().lower().startswith("v=dmarc1")]
    except DnsTemporaryError as error:
        return [dns_failed(f"the DMARC record {name}", error, name)]
    publish = f'Publish the TXT record "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}" at {name}.'
    if not records:
        return [Finding("dmarc-missing", W, f"{domain} has no DMARC record, so receivers do not know what to do "
                        "with forgeries of it, and large providers (Gmail, Yahoo) file or refuse bulk mail "
                        "from domains without one.", publish, subject=name)]
    if len(records) > 1:
        return [Finding("dmarc-syntax", E, f"{name} holds {len(records)} DMARC records; receivers ignore them "
                        "all.", f"Keep one DMARC record at {name} and delete the others.", subject=name)]
    record = parse_dmarc_record(records[0])
    if record is None or record.invalid_policy:
        why = record.invalid_policy if record is not None else "it does not start with v=DMARC1;"
        return [Finding("dmarc-syntax", E, f'The DMARC record at {name} ("{records[0]}") is not valid ({why}); '
                        "receivers ignore it.", publish, subject=name)]
    policy = record.p or "none"
    testing = " (t=y: receivers apply one step less while testing)" if record.testing else ""
    if policy == "none":
        return [Finding("dmarc-none", W, f"The DMARC policy of {domain} is p=none: {_MEANING['none']}, so "
                        "forgeries of the domain still reach inboxes.",
                        f"Once the aggregate reports (`postoffice dmarc reports`) show only your own servers, "
                        f"change {name} to p=quarantine, later p=reject.", subject=name)]
    return [Finding("dmarc-none", OK, f"The DMARC policy of {domain} is p={policy}: {_MEANING[policy]}"
                    f"{testing}.", subject=name)]


async def check_mta_sts(mta_sts: MtaSts, domain: str, hosts: list[MxHost]) -> list[Finding]:
    found = await mta_sts.lookup(domain)
    if found.policy is None:
        if found.problem:
            problem = found.problem[:1].upper() + found.problem[1:]
            return [Finding("mta-sts-unavailable", W, f"{problem}; senders deliver without it, as if there "
                            "were none.",
                            f"Serve the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt with a valid "
                            f"certificate, or remove the TXT record _mta-sts.{domain}.", subject=domain)]
        return [Finding("mta-sts-mismatch", OK, f"{domain} publishes no MTA-STS policy (optional: it makes senders "
                        "require TLS).", subject=domain)]
    policy = found.policy
    outside = [h.name for h in hosts if not policy.allows(h.name)]
    if outside:
        severity = E if policy.mode == "enforce" else W
        effect = ("senders that honour it refuse to deliver to them" if policy.mode == "enforce"
                  else "senders report failures to them (mode: testing)")
        patterns = ", ".join(policy.mx) or "none"
        return [Finding("mta-sts-mismatch", severity, f"The MTA-STS policy of {domain} (mx: {patterns}) does not "
                        f"name the MX host{'s' if len(outside) > 1 else ''} {', '.join(outside)}, so {effect}.",
                        f"Add mx: {outside[0]} to the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt "
                        f"and change the id= of _mta-sts.{domain}.", subject=domain)]
    return [Finding("mta-sts-mismatch", OK, f"The MTA-STS policy of {domain} (mode: {policy.mode}) names every MX "
                    "host.", subject=domain)]


async def check_postmaster(directory: Directory, domain: str) -> list[Finding]:
    address = f"postmaster@{domain}"
    resolution = await directory.resolve_recipient(address)
    if resolution.exists:
        return [Finding("postmaster-missing", OK, f"Mail to {address} reaches someone here.", subject=address)]
    why = f" ({resolution.problem})" if resolution.problem else ""
    return [Finding("postmaster-missing", E, f"Mail to {address} reaches nobody here{why}; RFC 5321 requires it "
                    "and other servers' administrators write there about problems.",
                    f"Add a user, or point it somewhere: `postoffice alias add {address} you@{domain}`.",
                    subject=address)]
