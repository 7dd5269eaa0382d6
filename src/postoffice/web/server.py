"""The `http` and `https` listeners: uvicorn serving web/routes.py in `serve`'s own event loop.

    factories = listener_factories()        # {"http": ..., "https": ...}, gathered by app.py
    listener = await factories["https"](services, ListenAddress("0.0.0.0", 443))
    await listener.close()

Implementation notes:

- No process or thread of its own: we bind the sockets (net/listener.py ``bind_sockets``, so a
  port in use is the same one-sentence start-up error as for the mail listeners) and give them
  to ``uvicorn.Server.startup``, which only creates asyncio servers on them. ``Server.serve``
  is not used: it would install its own signal handlers over `serve`'s.
- HTTPS uses ``services.tls.handshake_context()``, the context of the mail listeners: a
  certificate replaced on disk is served from the next handshake, without a restart.
- Every connection counts in ``services.connection_limiter`` like a mail connection (per IP and
  in all); over the limit it is closed at once. A connection must deliver each request's head
  within ``[limits] line_timeout`` seconds, or it is closed (uvicorn itself bounds only the idle
  time between requests), so slow clients cannot pile up connections.
- uvicorn and starlette are imported when the first web listener opens, so other commands of
  the CLI do not pay for them (70 to 100 ms on the 2-core test machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from postoffice.config import ListenAddress, UnixAddress
from postoffice.net.listener import bind_sockets
from postoffice.net.running import ListenerFactory, RunningListener

if TYPE_CHECKING:
    from postoffice.auth.limits import ConnectionLimiter
    from postoffice.services import Services

__all__ = ["listener_factories"]

log = logging.getLogger(__name__)

GRACE = 5.0  # seconds for requests under way to finish at shutdown
KEEP_ALIVE = 5  # seconds an idle connection is kept between requests


def listener_factories() -> dict[str, ListenerFactory]:
    return {"http": _factory(tls=False), "https": _factory(tls=True)}


def _factory(*, tls: bool) -> ListenerFactory:
    async def start(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
        assert isinstance(address, ListenAddress)  # [listen] http and https take no unix: paths
        return await start_web_listener(services, address.host, address.port, tls=tls)
    return start


async def start_web_listener(services: Services, host: str, port: int, *, tls: bool) -> RunningListener:
    import uvicorn

    from postoffice.web.routes import web_app

    name = "https" if tls else "http"
    sockets = await bind_sockets(host, port)
    config = uvicorn.Config(
        web_app(services), lifespan="off", log_config=None, access_log=False,
        proxy_headers=False, server_header=False, ws="none",
        http=_limited_protocol(services.connection_limiter, services.config.limits.line_timeout),
        timeout_keep_alive=KEEP_ALIVE, timeout_graceful_shutdown=int(GRACE),
    )
    config.load()
    config.ssl = services.tls.handshake_context() if tls else None
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    # uvicorn logs each malformed request at WARNING: a client's doing, not the administrator's.
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
    try:
        await server.startup(sockets=sockets)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    ticker = asyncio.create_task(_tick(server))
    ip, bound_port = sockets[0].getsockname()[:2]
    shown = f"[{ip}]:{bound_port}" if ":" in ip else f"{ip}:{bound_port}"  # as the mail listeners show it

    async def close() -> None:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await server.shutdown()

    return RunningListener(name, shown, close, tuple(sockets))


async def _tick(server: Any) -> None:
    """What uvicorn's main loop would do: refresh the Date header once a second."""
    while True:
        await server.on_tick(0)
        await asyncio.sleep(1.0)


def _limited_protocol(limiter: ConnectionLimiter, request_timeout: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        """uvicorn's HTTP/1.1 protocol, counted by our connection limiter and with a deadline
        for each request's head."""

        _counted_ip: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ip = self.client[0] if self.client else ""
            refusal = limiter.acquire(ip)
            if refusal is not None:
                log.info("http: refused a connection from %s: %s", ip, refusal.value.lower())
                transport.abort()
                return
            self._counted_ip = ip
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self._deadline is not None:
                self._deadline.cancel()
            if self._counted_ip is not None:
                limiter.release(self._counted_ip)
                self._counted_ip = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_timeout, self._expire)

        def _expire(self) -> None:
            # A request being answered has its own time limits (routes.py); only a connection
            # still waiting for (the rest of) a request head is closed.
            if self.cycle is None or self.cycle.response_complete:
                log.debug("http: closing a connection from %s: no request within %g s",
                          self.client[0] if self.client else "", request_timeout)
                self.transport.close()

    return LimitedH11Protocol
