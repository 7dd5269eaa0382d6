"""`postoffice serve`: one process, every listener, clean shutdown; `[smtp] processes` (one per
core by default) and `[pop3] processes` add worker processes that share those listeners' sockets
(net/workers.py).

Start-up order: take the data directory's lock (one server per data directory), open the store,
load the TLS certificate, start each configured protocol listener, log one line per listener (and
a warning when a certificate expires within 21 days, daily from then on: net/tls_expiry.py), then
wait for SIGTERM or SIGINT and close everything in reverse order. Anything that stops start-up and
that an administrator can fix (a port in use, a missing or expired certificate, an address of
another machine) is a :class:`StartupError` whose text is one sentence naming the listener, key
or file and the fix; `postoffice serve` prints it and exits, the traceback goes to the debug log. Each protocol
module offers its listener factories (`listener_factories()`), gathered here in
`LISTENER_FACTORIES` (protocol modules import nothing from this one); a configured protocol without a factory is reported, not silently ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from postoffice.config import CONFIG_FILE_NAME, Config, ListenAddress, UnixAddress
from postoffice.diagnostics.daily_check import run_daily_checks
from postoffice.filtering.junk_learning import JunkTrainer
from postoffice.imap.server import listener_factories as imap_listener_factories
from postoffice.managesieve.server import listener_factories as managesieve_listener_factories
from postoffice.net.accept_balance import AcceptBoard
from postoffice.net.listen_errors import explain_listen_error
from postoffice.net.running import ListenerFactory, RunningListener
from postoffice.net.tls import TlsConfigError
from postoffice.net.tls_expiry import watch_certificate_expiry
from postoffice.net.workers import ListenerWorkers, group_of, process_counts
from postoffice.pop3.server import listener_factories as pop3_listener_factories
from postoffice.services import Services, open_services
from postoffice.smtp.service import listener_factories as smtp_listener_factories
from postoffice.store.index_pacing import index_in_background
from postoffice.store.interface import GarbageCollected
from postoffice.transfer.fetch_jobs import run_fetch_jobs
from postoffice.web.server import listener_factories as web_listener_factories

if TYPE_CHECKING:
    from postoffice.queue.runner import QueueRunner

log = logging.getLogger("postoffice")

# The web listeners come last: their autoconfig answers advertise the ports the others got.
PROTOCOLS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "lmtp", "managesieve",
             "http", "https")


class StartupError(Exception):
    """`serve` cannot start; ``str(error)`` is one plain sentence (what, where, the fix)."""


class AlreadyRunning(StartupError):
    pass


# protocol name -> async factory(services, address) -> RunningListener
LISTENER_FACTORIES: dict[str, ListenerFactory] = {
    **smtp_listener_factories(), **imap_listener_factories(), **pop3_listener_factories(),
    **managesieve_listener_factories(), **web_listener_factories(),
}


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on DATA/serve.lock for the life of the process."""
    path = data_dir / "serve.lock"
    try:
        handle = open(path, "a+")  # noqa: SIM115 - held open while serving
    except OSError as error:
        raise StartupError(
            f"{path} cannot be opened ({(error.strerror or str(error)).lower()}); the user running postoffice must be able to "
            f"write in the data directory {data_dir} (`ls -ld {data_dir}` shows its owner)."
        ) from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"Another postoffice is already serving {data_dir} (pid {pid}); stop it first, "
            "or give this one another --data directory."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def configured_listeners(config: Config) -> list[tuple[str, ListenAddress]]:
    return [(p, a) for p in PROTOCOLS for a in getattr(config.listen, p)]


def certificates_in_use(config: Config) -> list[tuple[str, Path]]:
    """(config key, file) of each certificate the listeners serve: every listener but LMTP and
    plain HTTP offers TLS with [tls] cert_file."""
    if any(protocol not in ("lmtp", "http") for protocol, _ in configured_listeners(config)):
        return [("[tls] cert_file", config.tls.cert_file)]
    return []


async def serve(config: Config, *, ready: Callable[[list[RunningListener]], None] | None = None,
                dev: bool = False) -> None:
    """``dev``: the listeners are ``serve --dev``'s fixed ports, not the file's (for error texts)."""
    lock = lock_data_dir(config.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running: list[RunningListener] = []
    try:
        counts = _shared_groups(config)
        async with open_services(config, processes=max(counts.values(), default=1)) as services:
            services.accept_boards = {group: AcceptBoard.create(count) for group, count in counts.items()}
            # `kill -HUP`: re-read the TLS certificate now, in every process (a renewal does too).
            loop.add_signal_handler(signal.SIGHUP, services.reload_tls)
            if config.tls.acme:  # the listeners need a certificate before the CA issues one
                from postoffice.acme.renewal import prepare_certificate

                prepare_certificate(config)
            await _start_listeners(services, running, dev)
            certificates = _start_certificate_renewal(services, running)
            maintenance = asyncio.create_task(_maintain(services))
            runner = _queue_runner(services)
            watch = getattr(services.store, "watch_external_changes", None)
            if watch is not None:  # other processes' changes: IMAP sessions and the runner see them
                watch(on_queued=runner.wake)
            runner_task = asyncio.create_task(runner.run())
            indexer = asyncio.create_task(index_in_background(services.store))
            junk_trainer = asyncio.create_task(JunkTrainer(services.store, config.junk).run())
            domain_checks = asyncio.create_task(run_daily_checks(services))
            fetch_jobs = asyncio.create_task(run_fetch_jobs(services.store, services.directory, config.data_dir))
            expiry = asyncio.create_task(watch_certificate_expiry(lambda: certificates_in_use(config),
                                                                  acme=config.tls.acme))
            # What start-up made (modules, config, TLS contexts: ~44,000 objects) lives as long
            # as the process: left out of every full collection, which then costs ~16 ms less.
            gc.freeze()
            workers = _start_workers(services, running)
            if workers is not None:
                services.tls_reloaded.append(workers.reload_tls)
            try:
                if workers is not None:
                    await workers.started()
                if not running:
                    log.info("no protocol listeners are available in this version yet; store ready")
                log.info("postoffice is serving %s (pid %d); stop with Ctrl-C or SIGTERM",
                         config.data_dir, os.getpid())
                if ready is not None:
                    ready(running)
                await stop.wait()
                log.info("stopping")
            finally:
                # Attempts under way finish (or give their entries back) before the store closes.
                await runner.stop(grace=10.0)
                runner_task.cancel()
                maintenance.cancel()
                if certificates is not None:
                    certificates.cancel()
                indexer.cancel()
                junk_trainer.cancel()
                domain_checks.cancel()
                fetch_jobs.cancel()
                expiry.cancel()
                if workers is not None:
                    await workers.stop()
                # Listeners before the accept board: each connection they close gives its
                # board slot back as it ends.
                for listener in reversed(running):
                    with contextlib.suppress(Exception):
                        await listener.close()
                for board in services.accept_boards.values():
                    board.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        lock.close()
    log.info("stopped")


async def _start_listeners(services: Services, running: list[RunningListener], dev: bool) -> None:
    """Open every configured listener, or none: on a failure those already open are closed and
    a :class:`StartupError` says which listener failed and why."""
    config = services.config
    wanted = [(p, a) for p, a in configured_listeners(config) if p in LISTENER_FACTORIES]
    if any(protocol not in ("lmtp", "http") for protocol, _ in wanted):
        try:  # every listener but LMTP and HTTP offers TLS: a bad certificate stops start-up, not a STARTTLS later
            services.tls  # noqa: B018 - the property loads and checks the files
        except TlsConfigError as error:
            raise StartupError(str(error)) from error
    try:
        for protocol, address in wanted:
            try:
                listener = await LISTENER_FACTORIES[protocol](services, address)
            except OSError as error:  # socket.gaierror included: a [listen] name that does not resolve
                raise StartupError(_listen_failure(config, protocol, address, error, dev)) from error
            running.append(listener)
            _note_bound_port(services, listener)
    except BaseException:
        for opened in reversed(running):
            with contextlib.suppress(Exception):
                await opened.close()
        running.clear()
        raise
    for listener in running:
        log.info("listening: %s on %s", listener.protocol, listener.address)


def _note_bound_port(services: Services, listener: RunningListener) -> None:
    """Remember the port a listener got (the real one where 0 was asked for): the autoconfig
    answers advertise it."""
    port = listener.address.rpartition(":")[2]
    if port.isdigit():  # not a unix: socket
        ports = services.bound_ports.get(listener.protocol, ())
        services.bound_ports[listener.protocol] = (*ports, int(port))


def _listen_failure(config: Config, protocol: str, address: ListenAddress | UnixAddress,
                    error: OSError, dev: bool) -> str:
    if isinstance(address, UnixAddress):
        host, port = str(address.path), None
    else:
        host, port = address.host, address.port
    return explain_listen_error(protocol, str(address), host, port, error,
                                str(config.data_dir / CONFIG_FILE_NAME), dev=dev)


def _start_certificate_renewal(services: Services,
                               running: list[RunningListener]) -> asyncio.Task[None] | None:
    """`[tls] acme`: the task that obtains and renews the certificate (acme/renewal.py), after a
    warning if no listener can answer the CA's challenge."""
    tls = services.config.tls
    if not tls.acme:
        return None
    from postoffice.acme.renewal import CertificateRenewal

    protocols = {listener.protocol for listener in running}
    if tls.acme_challenge == "http-01" and "http" not in protocols:
        log.warning("ACME: [tls] acme_challenge is http-01, but no HTTP listener runs to answer "
                    "it; set [listen] http (port 80), or acme_challenge = \"tls-alpn-01\"")
    if tls.acme_challenge == "tls-alpn-01" and not any(
            x.protocol in ("https", "imaps", "pop3s", "submissions") and x.address.endswith(":443")
            for x in running):
        log.warning("ACME: the CA checks tls-alpn-01 on port 443, where no TLS listener of this "
                    "server listens; set [listen] https to port 443, or forward 443 to a TLS "
                    "listener")
    return asyncio.create_task(CertificateRenewal.for_services(services).run())


def _queue_runner(services: Services) -> QueueRunner:
    """The outbound queue runner: local recipients are delivered here, the others sent to
    their domains' MX hosts as `[outbound]` says (queue/transports.py)."""
    from postoffice.queue.runner import QueueRunner
    from postoffice.queue.transports import remote_transport

    return QueueRunner(services.store, services.directory, services.config.outbound,
                       services.config.server.hostname, remote=remote_transport(services),
                       filters=services.filters)


def _shared_groups(config: Config) -> dict[str, int]:
    """Groups of protocols (net/workers.py) to serve in several processes: those with a count
    above 1 and a host:port listener configured (a unix socket cannot be shared)."""
    listening = {group_of(protocol) for protocol, address in configured_listeners(config)
                 if isinstance(address, ListenAddress)}
    return {group: count for group, count in process_counts(config).items()
            if count > 1 and group in listening}


def _start_workers(services: Services, running: list[RunningListener]) -> ListenerWorkers | None:
    """Worker processes that share the listening sockets of each group with several processes."""
    boards = services.accept_boards
    shared = [(x.protocol, sock) for x in running if group_of(x.protocol) in boards for sock in x.sockets]
    if not shared:
        return None
    workers = ListenerWorkers(services.config, shared, boards, services.shared_limits)
    workers.start()
    return workers


async def _maintain(services: Services, every: float = 6 * 3600) -> None:
    """Sweep blob files a crash left behind and old change-log rows, now and periodically."""
    days = services.config.store.blob_trash_days
    while True:
        try:
            log_garbage_collected(await services.store.collect_garbage(), days)
        except Exception:
            log.exception("store maintenance failed")
        await asyncio.sleep(every)


def log_garbage_collected(done: GarbageCollected, trash_days: int) -> None:
    """Every removal at WARNING, with counts and where the files went, so an administrator can
    notice a wrong one and undo it within the grace period."""
    kept = f"kept there {trash_days} day(s), then deleted" if trash_days else "deleted at once ([store] blob_trash_days = 0)"
    if done.skipped:
        log.error("store maintenance removed no file: %s", done.skipped)
    if done.orphans:
        log.warning("store maintenance moved %d message file(s) that no message refers to (left by interrupted "
                    "deliveries, or lost from a damaged store) to %s, %s; `postoffice import eml FILE --into ADDRESS` "
                    "adds one back",
                    done.orphans, done.trash, kept)
    if done.unreferenced:
        log.warning("store maintenance moved %d message file(s) of expunged messages to %s, %s",
                    done.unreferenced, done.trash, kept)
    if done.temporary:
        log.warning("store maintenance deleted %d temporary file(s) of interrupted writes", done.temporary)
    if done.purged:
        log.warning("store maintenance deleted %d file(s) from %s after their %d day(s) there",
                    done.purged, done.trash, trash_days)


def run(config: Config, *, ready: Callable[[list[RunningListener]], None] | None = None,
        dev: bool = False) -> None:
    """Run `serve` on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config, ready=ready, dev=dev))
    else:
        uvloop.run(serve(config, ready=ready, dev=dev))
