"""One certificate for a set of names, start to finish (RFC 8555 §7.1 "overview"), and what to
tell the administrator when it fails. Blocking: `serve` runs :func:`obtain_certificate` in a
thread while the event loop answers the CA's validation requests from ``challenges``."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postoffice.acme.challenge_answers import key_authorization, tls_alpn_certificate
from postoffice.acme.client import AcmeClient, AcmeError, AcmeProblem, AcmeUnreachable
from postoffice.setup.acme_challenges import AcmeChallenges

__all__ = ["CHALLENGE_TYPES", "AuthorizationFailed", "IssuedCertificate", "explain_failure",
           "obtain_certificate"]

log = logging.getLogger("postoffice.acme")

CHALLENGE_TYPES = ("http-01", "tls-alpn-01")


@dataclass(frozen=True)
class IssuedCertificate:
    chain_pem: bytes    # the certificate, then its intermediates
    key_pem: bytes      # a new key for every certificate
    names: tuple[str, ...]


class AuthorizationFailed(AcmeError):
    """The CA could not validate ``name``; ``problem`` is its error (RFC 8555 §7.1.5)."""

    def __init__(self, name: str, problem: AcmeProblem | None, challenge_type: str) -> None:
        detail = f": {problem.detail} ({problem.kind})" if problem else ""
        super().__init__(f"the CA could not validate {name}{detail}")
        self.name = name
        self.problem = problem
        self.challenge_type = challenge_type


def obtain_certificate(client: AcmeClient, names: list[str], *, challenge_type: str,
                       challenges: AcmeChallenges, email: str = "") -> IssuedCertificate:
    """Order a certificate for ``names`` (the first is its subject), prove each name with
    ``challenge_type`` through ``challenges``, and download it. Raises :class:`AcmeError`;
    :class:`AuthorizationFailed` names the first name that failed validation."""
    if challenge_type not in CHALLENGE_TYPES:
        raise ValueError(f"unknown challenge type {challenge_type}")
    if client.account_url is None:
        client.register(email)
    order = client.new_order(names)
    log.info("ACME: ordered a certificate for %s", ", ".join(names))
    thumbprint = client.key.thumbprint()
    answered: list[tuple[str, str]] = []  # (authorization URL, token)
    pending_names: list[str] = []
    try:
        for url in order.authorizations:
            authz = client.authorization(url)
            if authz.status == "valid":  # validated recently; the CA reuses it (§7.1.4)
                continue
            if authz.status != "pending":
                raise AuthorizationFailed(authz.name, _problem(authz.failure()), challenge_type)
            challenge = authz.challenge(challenge_type)
            if challenge is None:
                offered = ", ".join(str(c.get("type")) for c in authz.challenges)
                raise AcmeError(f"the CA does not offer {challenge_type} for {authz.name} "
                                f"(it offers {offered}); set [tls] acme_challenge to one of those")
            token = str(challenge["token"])
            answer = key_authorization(token, thumbprint)
            if challenge_type == "http-01":
                challenges.put_http(token, answer)
            else:
                challenges.put_alpn(authz.name, tls_alpn_certificate(authz.name, answer))
            answered.append((url, token))
            pending_names.append(authz.name)
            client.respond(str(challenge["url"]))
            log.info("ACME: asked the CA to validate %s by %s", authz.name, challenge_type)
        for url, _token in answered:
            authz = client.wait_for_authorization(url)
            if authz.status != "valid":
                raise AuthorizationFailed(authz.name, _problem(authz.failure()), challenge_type)
            log.info("ACME: the CA validated %s", authz.name)
    finally:
        for (_url, token), name in zip(answered, pending_names, strict=True):
            challenges.remove(token=token, name=name)
    key = ec.generate_private_key(ec.SECP256R1())
    order = client.finalize(client.order(order.url), _csr(key, names))
    if order.status != "valid":
        problem = _problem(order.error)
        raise problem or AcmeError(f"the ACME order ended {order.status}, without a certificate")
    chain = client.certificate(order)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return IssuedCertificate(chain, key_pem, tuple(names))


def _csr(key: ec.EllipticCurvePrivateKey, names: list[str]) -> bytes:
    # RFC 8555 §7.4: the CSR's names must be exactly the order's; X.509 caps a CN at 64 characters.
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if len(names[0]) <= 64 else []
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name(subject))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                              critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.DER)


def _problem(document: object) -> AcmeProblem | None:
    if not isinstance(document, dict):
        return None
    return AcmeProblem(str(document.get("type", "")), str(document.get("detail", "")),
                       int(document.get("status", 0) or 0))


# --- what to tell the administrator ------------------------------------------------------------

def explain_failure(error: AcmeError, directory_url: str) -> str:
    """The reason and the fix, one sentence, for the log line of a failed attempt."""
    if isinstance(error, AcmeUnreachable):
        return (f"{error}; check that this machine can make outgoing HTTPS connections and that "
                "[tls] acme_directory is right")
    if isinstance(error, AuthorizationFailed):
        return _explain_validation(error)
    if isinstance(error, AcmeProblem):
        if error.kind == "rateLimited":
            return (f"the CA's rate limit was reached ({error.detail}); postoffice retries later "
                    "by itself, and tests belong on the CA's staging directory "
                    "(acme-staging-v02.api.letsencrypt.org for Let's Encrypt)")
        if error.kind in ("rejectedIdentifier", "malformed") and "identifier" in error.detail.lower():
            return (f"the CA refuses to issue for these names ({error.detail}); "
                    "list only public DNS names in [tls] acme_names")
        if error.kind == "caa":
            return (f"a CAA record forbids this CA ({error.detail}); add a CAA record allowing "
                    "it, such as 0 issue \"letsencrypt.org\"")
        return f"the CA refused: {error.detail} ({error.kind})"
    return f"{error}; check [tls] acme_directory ({directory_url})"


def _explain_validation(error: AuthorizationFailed) -> str:
    name, problem = error.name, error.problem
    detail = f" ({problem.detail})" if problem and problem.detail else ""
    kind = problem.kind if problem else ""
    if any(word in detail for word in ("NXDOMAIN", "DNS problem", "resolve")):
        kind = "dns"  # Boulder says so in its type; other CAs (pebble: malformed) only in words
    port = "80 (HTTP)" if error.challenge_type == "http-01" else "443 (HTTPS)"
    if kind == "dns":
        return (f"the CA could not look up {name}{detail}; publish an A (and AAAA) record for "
                f"{name} with this server's address")
    if kind in ("connection", "tls"):
        return (f"the CA could not connect to {name} on port {port}{detail}; check that the "
                f"name's A/AAAA records point here, that port {port.split()[0]} is open in every "
                "firewall, and that [listen] "
                f"{'http' if error.challenge_type == 'http-01' else 'https'} listens on it")
    if kind == "caa":
        return (f"a CAA record of {name}'s domain forbids this CA{detail}; add one allowing it, "
                "such as 0 issue \"letsencrypt.org\"")
    if kind == "unauthorized":
        return (f"the CA reached {name} but got a wrong answer{detail}; the name's A/AAAA records "
                "probably point at another server, so point them at this one")
    return (f"the CA could not validate {name}{detail}; check that {name} points at this server "
            f"and that port {port} reaches it")
