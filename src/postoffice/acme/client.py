"""The ACME protocol (RFC 8555), one blocking request at a time: run it in a thread.

    client = AcmeClient("https://acme-v02.api.letsencrypt.org/directory", AccountKey.load_or_create(p))
    client.register("postmaster@example.org")                  # newAccount (found or created)
    order = client.new_order(["mail.example.org"])             # newOrder
    for url in order.authorizations:                            # one per name
        authz = client.authorization(url); ...; client.respond(challenge_url)
    order = client.finalize(order, csr_der); chain_pem = client.certificate(order)

Implementation notes:

- Every POST carries a fresh nonce (§6.5): from the previous response's Replay-Nonce, else from
  newNonce. A ``badNonce`` error is retried with the nonce it came with, as §6.5 asks.
- Errors from the server are problem documents (RFC 7807, §6.7) raised as :class:`AcmeProblem`
  with their type, detail and subproblems; network failures as :class:`AcmeUnreachable`.
- Polling honours Retry-After (§7.5.1, §7.4) within bounds, and gives up after ``poll_timeout``.
- urllib, not an HTTP library: a handful of requests every two months, and nothing to install.
"""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postoffice.acme.jws import AccountKey, b64url

__all__ = ["AcmeClient", "AcmeError", "AcmeProblem", "AcmeUnreachable", "Authorization", "Order"]

_USER_AGENT = "postoffice-acme/1"
# A CA may refuse any nonce now and then (pebble refuses 5% on purpose, to test clients): each
# refusal brings a fresh one. Three tries failed once in CI (a 1-in-8,000 run per request, over
# dozens of requests per test); ten make it negligible, and a CA refusing every nonce still ends.
_NONCE_ATTEMPTS = 10
_JOSE = "application/jose+json"


class AcmeError(Exception):
    """Anything that stops an ACME exchange."""


class AcmeUnreachable(AcmeError):
    """The ACME server could not be reached (connection, TLS or timeout)."""


class AcmeProblem(AcmeError):
    """A problem document from the server (RFC 8555 §6.7)."""

    def __init__(self, kind: str, detail: str, status: int,
                 subproblems: tuple[dict[str, Any], ...] = ()) -> None:
        super().__init__(f"{detail} ({kind})")
        self.kind = kind.removeprefix("urn:ietf:params:acme:error:")
        self.detail = detail
        self.status = status
        self.subproblems = subproblems


@dataclass(frozen=True)
class Order:
    url: str
    status: str
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Authorization:
    url: str
    name: str
    status: str
    challenges: tuple[dict[str, Any], ...] = field(default=())

    def challenge(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.challenges if c.get("type") == kind), None)

    def failure(self) -> dict[str, Any] | None:
        """The error of the challenge that failed, if one did (§7.1.5)."""
        return next((c["error"] for c in self.challenges if isinstance(c.get("error"), dict)), None)


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes
    location: str | None

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            raise AcmeError(f"the ACME server answered with something other than JSON "
                            f"(HTTP {self.status})") from None
        if not isinstance(value, dict):
            raise AcmeError("the ACME server answered with JSON that is not an object")
        return value


class AcmeClient:
    def __init__(self, directory_url: str, account_key: AccountKey, *,
                 ca_file: Path | None = None, timeout: float = 30.0,
                 poll_interval: float = 1.0, poll_timeout: float = 180.0) -> None:
        self.directory_url = directory_url
        self.key = account_key
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self._tls = ssl.create_default_context()
        if ca_file is not None:  # a private CA (step-ca, pebble) besides the system's
            self._tls.load_verify_locations(ca_file)
        self._directory: dict[str, Any] | None = None
        self._nonce: str | None = None
        self.account_url: str | None = None

    # --- the protocol ------------------------------------------------------------------------

    def directory(self) -> dict[str, Any]:
        if self._directory is None:
            self._directory = self._request("GET", self.directory_url).json()
            for needed in ("newNonce", "newAccount", "newOrder"):
                if not isinstance(self._directory.get(needed), str):
                    raise AcmeError(f"{self.directory_url} is not an ACME directory (no {needed})")
        return self._directory

    def terms_of_service(self) -> str | None:
        meta = self.directory().get("meta")
        return meta.get("termsOfService") if isinstance(meta, dict) else None

    def register(self, email: str = "") -> str:
        """Find or create the account of our key (§7.3), agreeing to the terms of service."""
        payload: dict[str, Any] = {"termsOfServiceAgreed": True}
        if email:
            payload["contact"] = [f"mailto:{email}"]
        response = self._post(self.directory()["newAccount"], payload, use_kid=False)
        if not response.location:
            raise AcmeError("the ACME server created the account but did not say its URL")
        self.account_url = response.location
        return response.location

    def new_order(self, names: list[str]) -> Order:
        payload = {"identifiers": [{"type": "dns", "value": name} for name in names]}
        response = self._post(self.directory()["newOrder"], payload)
        if not response.location:
            raise AcmeError("the ACME server created the order but did not say its URL")
        return _order(response.location, response.json())

    def authorization(self, url: str) -> Authorization:
        body = self._post(url, None).json()
        identifier = body.get("identifier") or {}
        challenges = tuple(c for c in body.get("challenges", ()) if isinstance(c, dict))
        return Authorization(url, str(identifier.get("value", "")), str(body.get("status")),
                             challenges)

    def respond(self, challenge_url: str) -> None:
        """Tell the server the challenge is ready to be validated (§7.5.1)."""
        self._post(challenge_url, {})

    def wait_for_authorization(self, url: str) -> Authorization:
        """Poll until the authorization is no longer pending (§7.5.1)."""
        deadline = time.monotonic() + self.poll_timeout
        while True:
            authz = self.authorization(url)
            if authz.status not in ("pending", "processing"):
                return authz
            self._pause(deadline, f"the validation of {authz.name}")

    def finalize(self, order: Order, csr_der: bytes) -> Order:
        """Send the CSR (§7.4) and poll until the certificate is issued or the order fails."""
        response = self._post(order.finalize, {"csr": b64url(csr_der)})
        order = _order(order.url, response.json())
        deadline = time.monotonic() + self.poll_timeout
        while order.status in ("ready", "processing"):
            self._pause(deadline, "the certificate", response.headers.get("retry-after"))
            response = self._post(order.url, None)
            order = _order(order.url, response.json())
        return order

    def order(self, url: str) -> Order:
        return _order(url, self._post(url, None).json())

    def certificate(self, order: Order) -> bytes:
        """The PEM chain (§7.4.2): the certificate first, then the intermediates."""
        if order.certificate is None:
            raise AcmeError(f"the order is {order.status}, with no certificate to download")
        response = self._post(order.certificate, None, accept="application/pem-certificate-chain")
        if b"-----BEGIN CERTIFICATE-----" not in response.body:
            raise AcmeError("the ACME server sent a certificate that is not PEM")
        return response.body

    # --- transport ---------------------------------------------------------------------------

    def _pause(self, deadline: float, what: str, retry_after: str | None = None) -> None:
        wait = self.poll_interval
        if retry_after and retry_after.isdigit():
            wait = min(max(float(retry_after), self.poll_interval), 30.0)
        if time.monotonic() + wait > deadline:
            raise AcmeError(f"the ACME server did not finish {what} within "
                            f"{self.poll_timeout:.0f} seconds")
        time.sleep(wait)

    def _post(self, url: str, payload: Any, *, use_kid: bool = True,
              accept: str = "application/json") -> _Response:
        kid = None
        if use_kid:
            if self.account_url is None:
                raise AcmeError("register() must come first")
            kid = self.account_url
        for attempt in range(_NONCE_ATTEMPTS):
            body = self.key.sign(url, self._take_nonce(), payload, kid=kid)
            try:
                return self._request("POST", url, body, content_type=_JOSE, accept=accept)
            except AcmeProblem as problem:
                if problem.kind != "badNonce" or attempt == _NONCE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _take_nonce(self) -> str:
        nonce, self._nonce = self._nonce, None
        if nonce is None:
            response = self._request("HEAD", self.directory()["newNonce"])
            nonce = response.headers.get("replay-nonce")
            if not nonce:
                raise AcmeError("the ACME server gave no nonce (Replay-Nonce header)")
        return nonce

    def _request(self, method: str, url: str, body: bytes | None = None, *,
                 content_type: str | None = None, accept: str = "application/json") -> _Response:
        headers = {"User-Agent": _USER_AGENT, "Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._tls) as reply:
                response = _Response(reply.status, _lower(reply.headers.items()), reply.read(),
                                     reply.headers.get("Location"))
        except urllib.error.HTTPError as error:
            response = _Response(error.code, _lower(error.headers.items()), error.read(),
                                 error.headers.get("Location"))
            self._keep_nonce(response)
            raise _problem(response) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AcmeUnreachable(f"the ACME server {url} cannot be reached ({reason})") from None
        self._keep_nonce(response)
        return response

    def _keep_nonce(self, response: _Response) -> None:
        nonce = response.headers.get("replay-nonce")
        if nonce:
            self._nonce = nonce


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def _order(url: str, body: dict[str, Any]) -> Order:
    return Order(url, str(body.get("status")), tuple(body.get("authorizations", ())),
                 str(body.get("finalize", "")), body.get("certificate"), body.get("error"))


def _problem(response: _Response) -> AcmeProblem:
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return AcmeProblem("serverInternal", f"HTTP {response.status} without a problem document",
                           response.status)
    subproblems = tuple(p for p in body.get("subproblems", ()) if isinstance(p, dict))
    return AcmeProblem(str(body.get("type", "")), str(body.get("detail", "")).strip(),
                       response.status, subproblems)
