"""A raw-socket SMTP client for hostile-input tests: send exact bytes, read exact replies."""
from __future__ import annotations

import re
import socket
import ssl

_REPLY_END = re.compile(rb"^\d{3} [^\r\n]*\r\n", re.MULTILINE)


class RawSmtp:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """One complete (possibly multi-line) reply: (code, full text)."""
        while True:
            match = _REPLY_END.search(self.buffer)
            if match:
                text, self.buffer = self.buffer[: match.end()], self.buffer[match.end():]
                return int(text[:3]), text.decode("utf-8", "replace")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered {self.buffer!r}")
            self.buffer += chunk

    def cmd(self, line: str | bytes) -> tuple[int, str]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def starttls(self) -> None:
        code, _ = self.cmd("STARTTLS")
        assert code == 220
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)

    def closed(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            rest = self.sock.recv(65536)
        except (ConnectionError, OSError):
            return True
        self.buffer += rest
        return rest == b""

    def close(self) -> None:
        self.sock.close()
