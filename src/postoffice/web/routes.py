"""The HTTP endpoints (a Starlette app): client autoconfiguration, MTA-STS, ACME HTTP-01.

    app = web_app(services)          # served by web/server.py on [listen] http and https

| path                                                   | for                                   |
| ------------------------------------------------------ | ------------------------------------- |
| GET /.well-known/autoconfig/mail/config-v1.1.xml,      | Thunderbird, K-9, Evolution (Mozilla  |
|     /mail/config-v1.1.xml  ?emailaddress=              | autoconfig)                           |
| POST /autodiscover/autodiscover.xml (any letter case)  | Outlook (Autodiscover POX)            |
| GET /autodiscover/autodiscover.json/v1.0/{address}     | Outlook (Autodiscover v2: points to   |
|     ?Protocol=AutodiscoverV1                           | the POX endpoint)                     |
| GET /apple/mobileconfig?emailaddress=                  | iPhone, iPad, macOS (unsigned profile)|
| GET /.well-known/mta-sts.txt                           | senders' MTA-STS (RFC 8461 §3.3)      |
| GET /.well-known/acme-challenge/{token}                | ACME HTTP-01 (RFC 8555 §8.3)          |

The documents themselves are built in setup/autoconfig.py. Here: which domain is asked about
(the address, else the Host header: ``autoconfig.example.org`` means ``example.org``), whether
it is one of ours (others get 404, so the server tells nothing about domains it does not host),
and which listeners to advertise: those open, on the ports they are bound to.

Request bodies (only Autodiscover POX has one) are read up to ``MAX_BODY`` bytes within
``[limits] line_timeout`` seconds; more is 413, slower is 408, bad XML 400.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from postoffice.config_values import is_host_name
from postoffice.setup.autoconfig import (
    MAIL_LISTENERS,
    AutodiscoverRequestError,
    ClientSettings,
    StsMode,
    apple_mobileconfig,
    autodiscover_json,
    autodiscover_request_address,
    autodiscover_xml,
    mozilla_autoconfig,
    mta_sts_mode,
    mta_sts_policy,
    settings_from_listeners,
)

if TYPE_CHECKING:
    from postoffice.services import Services

__all__ = ["MAX_BODY", "web_app"]

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # an Autodiscover request is about 400 bytes
_XML = "application/xml; charset=utf-8"


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


_Builder = Callable[[Request], Awaitable[Response]]


def web_app(services: Services) -> ASGIApp:
    endpoints = _Endpoints(services)
    routes = [
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", endpoints.mozilla),
        Route("/mail/config-v1.1.xml", endpoints.mozilla),
        Route("/autodiscover/autodiscover.json/v1.0/{address}", endpoints.autodiscover_json),
        Route("/autodiscover/autodiscover.json", endpoints.autodiscover_json),
        Route("/autodiscover/autodiscover.xml", endpoints.autodiscover_pox, methods=["POST"]),
        Route("/apple/mobileconfig", endpoints.mobileconfig),
        Route("/.well-known/mta-sts.txt", endpoints.mta_sts),
        Route("/.well-known/acme-challenge/{token}", endpoints.acme_challenge),
    ]
    return _AnyCaseAutodiscover(Starlette(routes=routes))


class _AnyCaseAutodiscover:
    """Outlook asks for /Autodiscover/Autodiscover.xml, other clients /autodiscover/...: the
    Autodiscover paths match in any letter case (the address in the JSON path keeps its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path[:14].lower() == "/autodiscover/":
            head, sep, rest = path.partition("/v1.0/")
            scope = {**scope, "path": head.lower() + sep + rest}
        await self.app(scope, receive, send)


class _Endpoints:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._sts: tuple[tuple[int, int] | None, StsMode] | None = None  # (cert file stamp, mode)

    # --- what to advertise -------------------------------------------------------------------

    def settings(self) -> ClientSettings:
        """The listeners that are open (`serve` opens the web listeners last), else, for a web
        listener on its own, the configured ones."""
        config = self.services.config
        bound = self.services.bound_ports
        ports = {name: list(bound.get(name, ())) if bound else
                 [a.port for a in getattr(config.listen, name) if a.port] for name in MAIL_LISTENERS}
        return settings_from_listeners(config.server.hostname, ports)

    def pox_url(self) -> str:
        """Where Outlook posts its POX request: our host name, over HTTPS."""
        bound = self.services.bound_ports.get("https") or [
            a.port for a in self.services.config.listen.https if a.port] or [443]
        port = "" if 443 in bound else f":{bound[0]}"
        return f"https://{self.services.config.server.hostname}{port}/autodiscover/autodiscover.xml"

    async def local_domain(self, request: Request, address: str | None, prefix: str) -> str:
        """The domain asked about: ``address``'s, else the Host header's without ``prefix``;
        404 unless it is one of ours."""
        if address is not None:
            address = address.strip()
            local, at, domain = address.rpartition("@")
            # Printable, no spaces: it goes into XML, a property list and a file name.
            if not (local and at and len(address) <= 254 and address.isprintable()
                    and not any(c.isspace() for c in address) and is_host_name(domain.lower().rstrip("."))):
                raise _Refused(400, f"{address[:100]!r} is not a mail address.")
        else:
            host = request.headers.get("host", "").rpartition(":")[0] or request.headers.get("host", "")
            domain = host.removeprefix(prefix)
        domain = domain.lower().rstrip(".")
        if not domain or not await self.services.directory.is_local_domain(domain):
            raise _Refused(404, f"{domain[:100] or 'That domain'} is not a mail domain of this server.")
        return domain

    async def _answer(self, request: Request, build: _Builder) -> Response:
        try:
            return await build(request)
        except _Refused as refused:
            return PlainTextResponse(refused.text + "\n", status_code=refused.status)

    # --- endpoints ---------------------------------------------------------------------------

    async def mozilla(self, request: Request) -> Response:
        async def build(request: Request) -> Response:
            domain = await self.local_domain(request, request.query_params.get("emailaddress"), "autoconfig.")
            return Response(mozilla_autoconfig(self.settings(), domain), media_type=_XML)
        return await self._answer(request, build)

    async def autodiscover_pox(self, request: Request) -> Response:
        async def build(request: Request) -> Response:
            body = await _read_body(request, self.services.config.limits.line_timeout)
            try:
                address = autodiscover_request_address(body)
            except AutodiscoverRequestError as error:
                raise _Refused(400, f"Not an Autodiscover request: {error}.") from None
            await self.local_domain(request, address, "autodiscover.")
            return Response(autodiscover_xml(self.settings(), address.strip()), media_type=_XML)
        return await self._answer(request, build)

    async def autodiscover_json(self, request: Request) -> Response:
        async def build(request: Request) -> Response:
            address = request.path_params.get("address") or request.query_params.get("Email")
            if address is None:
                raise _Refused(400, "The address is missing: /autodiscover/autodiscover.json/v1.0/ADDRESS.")
            await self.local_domain(request, address, "autodiscover.")
            protocol = next((v for k, v in request.query_params.items() if k.lower() == "protocol"), "")
            status, body = autodiscover_json(protocol, self.pox_url())
            return Response(body, status_code=status, media_type="application/json")
        return await self._answer(request, build)

    async def mobileconfig(self, request: Request) -> Response:
        async def build(request: Request) -> Response:
            address = request.query_params.get("emailaddress")
            if address is None:
                raise _Refused(400, "Add ?emailaddress=YOUR-ADDRESS to the link.")
            await self.local_domain(request, address, "autoconfig.")
            try:
                profile = apple_mobileconfig(self.settings(), address.strip())
            except ValueError as error:
                raise _Refused(404, f"No profile can be made: {error}.") from None
            filename = re.sub(r"[^A-Za-z0-9@._+-]", "_", address.strip()) + ".mobileconfig"
            return Response(profile, media_type="application/x-apple-aspen-config",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return await self._answer(request, build)

    async def mta_sts(self, request: Request) -> Response:
        mode = await self._sts_mode()
        policy = mta_sts_policy(mode, [self.services.config.server.hostname])
        return PlainTextResponse(policy)

    async def acme_challenge(self, request: Request) -> Response:
        answer = self.services.acme_challenges.http(request.path_params["token"])
        if answer is None:
            return PlainTextResponse("No ACME challenge is waiting for that token.\n", status_code=404)
        return Response(answer, media_type="application/octet-stream")

    async def _sts_mode(self) -> StsMode:
        """testing or enforce, from the certificate file, re-read only when it changes."""
        cert_file = self.services.config.tls.cert_file
        stamp = await asyncio.to_thread(_stamp, cert_file)
        if self._sts is None or self._sts[0] != stamp:
            pem = await asyncio.to_thread(_read_or_none, cert_file)
            self._sts = (stamp, mta_sts_mode(pem))
        return self._sts[1]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


async def _read_body(request: Request, timeout: float) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _Refused(413, f"The request body is larger than {MAX_BODY} bytes.")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise _Refused(413, f"The request body is larger than {MAX_BODY} bytes.")
    except TimeoutError:
        raise _Refused(408, f"The request body did not arrive within {timeout:g} seconds.") from None
    return bytes(body)
