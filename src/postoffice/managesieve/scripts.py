"""ManageSieve's script commands (RFC 5804 §2.5-2.12) for one logged-in account: event -> reply.

The Sieve compiler checks every uploaded script in a thread (it is CPU work proportional to the
client's input, and must not stall the event loop); a refused script's NO names the line and
column. Store errors map to the §1.3 response codes: QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE,
NONEXISTENT, ACTIVE, ALREADYEXISTS, and TRYLATER for a full disk.
"""

from __future__ import annotations

import asyncio
import logging

from postoffice.filtering.sieve import SieveError, SieveLimits, compile_script
from postoffice.managesieve import proto as p
from postoffice.services import Services
from postoffice.store.interface import (
    AccountRecord,
    AlreadyExists,
    InvalidName,
    StorageFull,
    StoreError,
)
from postoffice.store.sieve_errors import ScriptIsActive, ScriptNotFound, SieveQuotaExceeded

log = logging.getLogger(__name__)


async def check_script(content: bytes, name: str = "script", *, max_size: int = 1 << 20) -> str | SieveError:
    """The script as text if it compiles, else the compiler's error (with line and column).

    Included scripts are not looked up: RFC 6609 lets a script be uploaded before the scripts
    it includes, and a missing one is a runtime error at delivery."""
    limits = SieveLimits(max_script_bytes=max_size)

    def compile_in_thread() -> str | SieveError:
        try:
            compile_script(content, name=name, limits=limits)
        except SieveError as error:
            return error
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as error:  # the compiler reports bad UTF-8 itself; belt and braces
            return SieveError(1, error.start + 1, "the script is not UTF-8")

    return await asyncio.to_thread(compile_in_thread)


class ScriptCommands:
    def __init__(self, services: Services, account: AccountRecord, conn_id: str) -> None:
        self.store = services.store
        self.limits = services.config.sieve
        self.account = account
        self.conn_id = conn_id

    async def run(self, event: p.Event) -> bytes:
        try:
            return await self._run(event)
        except ScriptNotFound as error:
            return p.no(str(error), "NONEXISTENT")
        except ScriptIsActive as error:
            return p.no(str(error), "ACTIVE")
        except AlreadyExists as error:
            return p.no(str(error), "ALREADYEXISTS")
        except SieveQuotaExceeded as error:
            return p.no(str(error), "QUOTA/MAXSCRIPTS" if error.limit == "maxscripts" else "QUOTA/MAXSIZE")
        except StorageFull:
            log.warning("%s: a Sieve script of %s was not saved: the disk is full", self.conn_id, self.account.address)
            return p.no("Not enough disk space right now; try again later", "TRYLATER")
        except (InvalidName, StoreError) as error:
            return p.no(str(error))

    async def _run(self, event: p.Event) -> bytes:
        store, account = self.store, self.account.id
        match event:
            case p.ListScripts():
                lines = b"".join(p.string(s.name) + (b" ACTIVE" if s.active else b"") + b"\r\n"
                                 for s in await store.list_sieve_scripts(account))
                return lines + p.ok("Listscripts completed")
            case p.GetScript(name=name):
                text = await store.get_sieve_script(account, name)
                return p.string(text, literal=True) + b"\r\n" + p.ok("Getscript completed")
            case p.HaveSpace(name=name, size=size):
                return await self.have_space(name, size)
            case p.PutScript(name=name, content=content):
                checked = await check_script(content, name, max_size=self.limits.max_script_size)
                if isinstance(checked, SieveError):
                    return p.no(f"Script not saved: {checked}")
                created = await store.put_sieve_script(account, name, checked, max_scripts=self.limits.max_scripts,
                                                       max_size=self.limits.max_script_size)
                log.info("%s: %s %s the Sieve script %r", self.conn_id, self.account.address,
                         "uploaded" if created else "replaced", name)
                return p.ok("Putscript completed")
            case p.CheckScript(content=content):
                if len(content) > self.limits.max_script_size:
                    return p.no(f"The script is longer than the {self.limits.max_script_size} octets allowed",
                                "QUOTA/MAXSIZE")
                checked = await check_script(content, max_size=self.limits.max_script_size)
                return p.no(str(checked)) if isinstance(checked, SieveError) else p.ok("Script is valid")
            case p.SetActive(name=""):
                await store.deactivate_sieve_script(account)
                return p.ok("No script is active now")
            case p.SetActive(name=name):
                # Checked again: it may have been stored by an older version with other rules.
                text = await store.get_sieve_script(account, name)
                checked = await check_script(text.encode(), name, max_size=max(self.limits.max_script_size, len(text) * 4))
                if isinstance(checked, SieveError):
                    return p.no(f"The script cannot be activated: {checked}")
                await store.activate_sieve_script(account, name)
                return p.ok("Setactive completed")
            case p.DeleteScript(name=name):
                await store.delete_sieve_script(account, name)
                return p.ok("Deletescript completed")
            case p.RenameScript(old=old, new=new):
                await store.rename_sieve_script(account, old, new)
                return p.ok("Renamescript completed")
        raise AssertionError(f"not a script command: {event!r}")

    async def have_space(self, name: str, size: int) -> bytes:
        """§2.5: would PUTSCRIPT of ``size`` octets under ``name`` fit the limits?"""
        if size > self.limits.max_script_size:
            return p.no(f"The largest script allowed is {self.limits.max_script_size} octets", "QUOTA/MAXSIZE")
        scripts = await self.store.list_sieve_scripts(self.account.id)
        if all(s.name != name for s in scripts) and len(scripts) >= self.limits.max_scripts:
            return p.no(f"An account may keep {self.limits.max_scripts} scripts; delete one first", "QUOTA/MAXSCRIPTS")
        return p.ok("Putscript would succeed")
