"""Typed, frozen configuration read from ``postoffice.toml`` in the data directory.

Every key has a default, so an empty or missing file is a valid configuration. The file is read
with :mod:`tomllib` into frozen, slotted dataclasses; relative paths are resolved against the data
directory, so the rest of the program only ever sees absolute paths.

A single table, ``_SCHEMA``, describes every section and key: its default, how to check it, and a
one-line explanation. Loading, :func:`render_config` and :func:`default_config_text` are all
driven by it, so the three can never disagree about which keys exist.

Every problem is reported as a :class:`ConfigError` whose text is one plain sentence naming the
file, the key, the bad value and what is allowed, because that sentence is what ``postoffice
serve`` prints before it exits (DESIGN §5).
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postoffice import config_values as v
from postoffice.config_values import (
    DEFAULT_IPV4_FIRST,
    DEFAULT_PROVIDERS,
    ListenAddress,
    ProviderLimits,
    UnixAddress,
    default_hostname,
)

__all__ = [
    "CONFIG_FILE_NAME", "AuthConfig", "Config", "ConfigError", "DkimConfig", "LimitsConfig",
    "ListenAddress", "ListenConfig", "OutboundConfig", "ServerConfig", "StoreConfig", "TlsConfig", "UnixAddress",
    "default_config_text", "default_hostname", "load_config", "render_config",
]

CONFIG_FILE_NAME = "postoffice.toml"


class ConfigError(Exception):
    """A problem with the configuration; ``str(error)`` is one plain sentence for the user."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    hostname: str
    log_level: str
    log_format: str = "text"
    # What other servers see (behind NAT: the router's); () = not known. `domain records` uses it.
    public_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class ListenConfig:
    smtp: tuple[ListenAddress, ...]
    submission: tuple[ListenAddress, ...]
    submissions: tuple[ListenAddress, ...]
    imap: tuple[ListenAddress, ...]
    imaps: tuple[ListenAddress, ...]
    pop3: tuple[ListenAddress, ...]
    pop3s: tuple[ListenAddress, ...]
    lmtp: tuple[ListenAddress | UnixAddress, ...]
    http: tuple[ListenAddress, ...] = ()
    https: tuple[ListenAddress, ...] = ()

    def by_service(self) -> dict[str, tuple[ListenAddress | UnixAddress, ...]]:
        """``{"smtp": (...), ...}`` in a fixed order, for code that opens every listener."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    min_version: str
    acme: bool = False
    acme_directory: str = v.LETS_ENCRYPT
    acme_email: str = ""
    acme_names: tuple[str, ...] = ()  # () = the host name + mta-sts., autoconfig., autodiscover. of each domain
    acme_challenge: str = "http-01"
    acme_ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    backend: str
    path: Path
    blobs: Path
    reader_threads: int
    blob_trash_days: int


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_message_size: int
    max_recipients: int
    max_line_length: int
    max_connections_per_ip: int
    max_userip_connections: int
    max_connections: int
    line_timeout: float
    login_timeout: float
    default_quota: int


@dataclass(frozen=True, slots=True)
class AuthConfig:
    plaintext_on_loopback: bool
    failed_login_delay: float
    login_cache_seconds: float


@dataclass(frozen=True, slots=True)
class DkimConfig:
    selector: str


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    command_timeout: float
    data_timeout: float
    transaction_timeout: float
    max_errors: int
    received_shows_user: bool
    recipient_delimiter: str
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    trusted_arc_sealers: tuple[str, ...]
    relay_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    relay_networks_allow_wide: bool = False
    relay_messages_per_minute: int = 60


@dataclass(frozen=True, slots=True)
class DnsConfig:
    nameservers: tuple[ListenAddress, ...]  # () = the system's (/etc/resolv.conf)
    timeout: float
    cache_entries: int
    blocklists: tuple[str, ...]
    authoritative_port: int  # `check domain` asks a domain's own name servers on this port
    domain_blocklists: tuple[str, ...]  # DBL-style lists of domains, for `check blocklists`


@dataclass(frozen=True, slots=True)
class DmarcConfig:
    report_address: str  # "" = incoming aggregate reports are not read


@dataclass(frozen=True, slots=True)
class ImapConfig:
    per_user_seen: bool


@dataclass(frozen=True, slots=True)
class Pop3Config:
    processes: int


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    retry_schedule: tuple[float, ...]  # seconds after each failed attempt; the last repeats
    max_queue_time: float  # seconds from queueing to giving up (a bounce)
    delay_warning_after: float  # seconds queued before a delay DSN; 0 = never
    concurrency: int  # deliveries under way at once, per process
    mx_port: int
    source_ipv4: str  # "" = whichever address the system picks
    source_ipv6: str
    # Defaults here as in the schema below, so code and tests can build one with only what matters.
    destination_concurrency: int = 5  # connections at once to one destination (its MX host set)
    messages_per_connection: int = 100
    ipv4_first: tuple[str, ...] = DEFAULT_IPV4_FIRST  # MX host suffixes tried over IPv4 first
    backoff_seconds: float = 60.0  # a destination no server of which answers: first pause
    max_backoff_seconds: float = 3600.0
    connect_timeout: float = 30.0  # seconds for another server to accept the TCP connection
    reply_timeout: float = 300.0  # RFC 5321 §4.5.3.2's 5 minutes; the other SMTP timeouts scale with it
    providers: tuple[ProviderLimits, ...] = DEFAULT_PROVIDERS  # shaping of the big providers, by MX suffix
    smarthost: ListenAddress | None = None  # relay everything through it; None = each domain's MX
    smarthost_tls: str = "starttls"  # "starttls" | "tls"
    smarthost_user: str = ""
    smarthost_password_file: Path | None = None  # or POSTOFFICE_SMARTHOST_PASSWORD
    smarthost_auth: str = "plain"  # "plain" (PLAIN, else LOGIN) | "xoauth2"
    smarthost_token_command: str = ""  # XOAUTH2: prints a fresh access token
    smarthost_token_file: Path | None = None  # XOAUTH2: holds the access token (kept fresh by others)
    smarthost_dkim_sign: bool = True  # False for relays that rewrite messages (they sign themselves)
    routes: tuple[tuple[str, ListenAddress], ...] = ()  # recipient domain -> its own relay
    sender_routes: tuple[tuple[str, ListenAddress], ...] = ()  # sender domain -> its own relay
    mta_sts: bool = True
    dane: bool = True
    srs: bool = True  # forwarded mail gets an SRS envelope sender
    ca_file: Path | None = None  # more CAs (PEM) for verified outbound TLS and MTA-STS fetches


# DESIGN §4: --dev binds loopback on 10000 + the standard port, so it needs no root.
_DEV_PORTS = {"smtp": 10025, "submission": 10587, "submissions": 10465, "imap": 10143,
              "imaps": 10993, "pop3": 10110, "pop3s": 10995, "lmtp": 10024, "http": 10080,
              "https": 10443}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    server: ServerConfig
    listen: ListenConfig
    tls: TlsConfig
    store: StoreConfig
    limits: LimitsConfig
    auth: AuthConfig
    dkim: DkimConfig
    smtp: SmtpConfig
    dns: DnsConfig
    imap: ImapConfig
    pop3: Pop3Config
    dmarc: DmarcConfig
    outbound: OutboundConfig

    def with_dev_listeners(self) -> Config:
        """Every listener (LMTP and HTTP included) on 127.0.0.1, port 10000 + its standard port."""
        listen = {name: (ListenAddress("127.0.0.1", port),) for name, port in _DEV_PORTS.items()}
        return dataclasses.replace(self, listen=ListenConfig(**listen))

    def with_ephemeral_listeners(self) -> Config:
        """Every listener on 127.0.0.1:0, for tests that read the bound ports afterwards."""
        listen = {name: (ListenAddress("127.0.0.1", 0),) for name in _DEV_PORTS}
        return dataclasses.replace(self, listen=ListenConfig(**listen))


# --- the schema ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    default: Any          # as written in the file; a callable is computed when needed
    parse: v.Parser
    doc: str              # the one-line comment written by default_config_text()


def _listen_key(name: str, default: list[str], doc: str) -> _Key:
    return _Key(name, default, v.listeners(unix=name == "lmtp"), doc)


_SCHEMA: dict[str, tuple[type, tuple[_Key, ...]]] = {
    "server": (ServerConfig, (
        _Key("hostname", default_hostname, v.hostname,
             "This server's DNS name: used in greetings, HELO, Received headers and the certificate."),
        _Key("log_level", "info", v.choice("debug", "info", "warning", "error"),
             'How much to log: "debug", "info", "warning" or "error".'),
        _Key("log_format", "text", v.choice("text", "json"),
             '"text" (one readable line per event) or "json" (one JSON object per line); '
             "docs/logging.md lists the fields."),
        _Key("public_addresses", [], v.ip_addresses,
             'This server\'s public IP addresses as other servers see them (behind NAT, the'
             ' router\'s), such as ["203.0.113.7", "2001:db8::7"]: `postoffice domain records`'
             " prints the A/AAAA and PTR records for them; [] = not known ([outbound] source_ipv4"
             " and source_ipv6 are used when set)."),
    )),
    "listen": (ListenConfig, (
        _listen_key("smtp", ["0.0.0.0:25"], "Incoming mail from other servers (STARTTLS offered)."),
        _listen_key("submission", ["0.0.0.0:587"], "Mail from your users' programs (STARTTLS)."),
        _listen_key("submissions", ["0.0.0.0:465"], "Mail from your users' programs over implicit TLS."),
        _listen_key("imap", ["0.0.0.0:143"], "IMAP for reading mail (STARTTLS)."),
        _listen_key("imaps", ["0.0.0.0:993"], "IMAP over implicit TLS."),
        _listen_key("pop3", ["0.0.0.0:110"], "POP3 for downloading mail (STLS)."),
        _listen_key("pop3s", ["0.0.0.0:995"], "POP3 over implicit TLS."),
        _listen_key("lmtp", [], 'Local delivery from other programs; "unix:/path" allowed; [] = off.'),
        _listen_key("http", ["0.0.0.0:80"],
                    "HTTP: mail client autoconfiguration (Thunderbird, Outlook, Apple) and ACME"
                    " http-01 challenges; point autoconfig.DOMAIN and autodiscover.DOMAIN here."),
        _listen_key("https", ["0.0.0.0:443"],
                    "HTTPS, with the [tls] certificate: the same, plus the MTA-STS policy at"
                    " mta-sts.DOMAIN/.well-known/mta-sts.txt."),
    )),
    "tls": (TlsConfig, (
        _Key("cert_file", "tls/cert.pem", v.path,
             "Certificate chain in PEM (e.g. certbot's fullchain.pem); re-read when it changes."),
        _Key("key_file", "tls/key.pem", v.path, "Private key in PEM, without a passphrase."),
        _Key("min_version", "1.2", v.choice("1.2", "1.3", expected='"1.2" or "1.3", in quotes'),
             'Oldest TLS version accepted: "1.2" or "1.3".'),
        _Key("acme", False, v.boolean,
             "Get the certificate from an ACME CA (Let's Encrypt) and renew it 30 days before it"
             " expires; cert_file and key_file are then written by postoffice."),
        _Key("acme_directory", v.LETS_ENCRYPT, v.https_url,
             "The ACME CA's directory URL (Let's Encrypt's staging CA, for trying things out:"
             " https://acme-staging-v02.api.letsencrypt.org/directory)."),
        _Key("acme_email", "", v.contact_address,
             'Where the CA may write about the certificate (expiry, policy changes); "" = nowhere.'),
        _Key("acme_names", [], v.domain_list("DNS names", '["mail.example.org"]', "mail.example.org"),
             "Names on the certificate; [] = the host name, plus mta-sts., autoconfig. and"
             " autodiscover. of each domain when they point here."),
        _Key("acme_challenge", "http-01",
             v.choice("http-01", "tls-alpn-01", expected='"http-01" or "tls-alpn-01"'),
             'How the CA checks the names point here: "http-01" (port 80, [listen] http) or'
             ' "tls-alpn-01" (port 443, [listen] https).'),
        _Key("acme_ca_file", "", v.optional_file,
             'CA certificates (PEM) trusted for the ACME server besides the system\'s (a private CA'
             ' such as step-ca); "" = the system\'s only.'),
    )),
    "store": (StoreConfig, (
        _Key("backend", "sqlite",
             v.choice("sqlite", expected='"sqlite", the only backend available today'),
             'Where mail is kept: "sqlite" (the only backend today).'),
        _Key("path", "store.sqlite3", v.path, "The SQLite database file."),
        _Key("blobs", "blobs", v.path, "Directory holding message contents, one file per message."),
        _Key("reader_threads", 4, v.number(1, 64, example=4),
             "Threads reading the store in parallel (1 to 64)."),
        _Key("blob_trash_days", 7, v.number(0, 3650, unit="days", example=7),
             "Days removed message files stay in blobs/.trash before deletion (0 = delete at once)."),
    )),
    "limits": (LimitsConfig, (
        _Key("max_message_size", 52428800, v.number(1024, unit="bytes", example=52428800),
             "Largest message accepted, in bytes (52428800 = 50 MiB)."),
        _Key("max_recipients", 100, v.number(1, example=100), "Most recipients in one message."),
        _Key("max_line_length", 4096, v.number(512, unit="bytes", example=4096),
             "Longest protocol line, in bytes (SMTP itself needs 1000)."),
        _Key("max_connections_per_ip", 100, v.number(1, example=100),
             "Most simultaneous connections from one IP address (IPv6: one /64) that have not"
             " logged in, every protocol together: flood protection (an MX's SMTP session counts"
             " throughout). Logged-in connections count under max_userip_connections instead."),
        _Key("max_userip_connections", 20, v.number(1, example=20),
             "Most simultaneous logged-in connections of one user from one IP address, for"
             " IMAP, POP3 and SMTP submission each (Dovecot's mail_max_userip_connections)."),
        _Key("max_connections", 2000, v.number(1, example=2000),
             "Most simultaneous connections in all (every protocol together, per process);"
             " lowered at start if the open-file limit cannot hold them."),
        _Key("line_timeout", 60.0, v.number(1, 3600, unit="seconds", example=60.0, whole=False),
             "Seconds a client has to finish a command line once it began sending it; sending"
             " slowly does not extend it."),
        _Key("login_timeout", 60.0, v.number(1, 3600, unit="seconds", example=60.0, whole=False),
             "Seconds from connecting to a successful login on IMAP, POP3 and the SMTP"
             " submission ports."),
        _Key("default_quota", 0, v.number(0, unit="bytes", example=1073741824),
             "Storage limit for new accounts, in bytes; 0 means unlimited."),
    )),
    "auth": (AuthConfig, (
        _Key("plaintext_on_loopback", True, v.boolean,
             "Allow passwords without TLS from this machine itself (e.g. webmail)."),
        _Key("failed_login_delay", 2.0, v.number(0, 60, unit="seconds", example=2.0, whole=False),
             "Seconds to wait after a failed login, doubled per failure, per IP and per account."),
        _Key("login_cache_seconds", 300.0, v.number(0, 86400, unit="seconds", example=300.0, whole=False),
             "Seconds a successful login is remembered (a keyed hash, in memory only), so clients"
             " that reconnect skip the slow password check; 0 turns it off."),
    )),
    "dkim": (DkimConfig, (
        _Key("selector", "mail", v.selector,
             "DKIM selector of each domain's RSA key (its Ed25519 key: <selector>-ed25519); keys live in keys/<domain>.<selector>.pem."),
    )),
    "smtp": (SmtpConfig, (
        _Key("command_timeout", 300.0, v.number(1, 3600, unit="seconds", example=300.0, whole=False),
             "Seconds to wait for the next SMTP command (RFC 5321 §4.5.3.2: at least 300)."),
        _Key("data_timeout", 180.0, v.number(1, 3600, unit="seconds", example=180.0, whole=False),
             "Seconds to wait for more message data during DATA or BDAT (RFC 5321: 180)."),
        _Key("transaction_timeout", 1800.0,
             v.number(60, 86400, unit="seconds", example=1800.0, whole=False),
             "Seconds from MAIL FROM to the end of the message data, however steadily it"
             " trickles in."),
        _Key("max_errors", 10, v.number(1, 1000, example=10),
             "Bad or unknown commands allowed before the connection is closed with 421."),
        _Key("received_shows_user", False, v.boolean,
             "Name the authenticated user in the Received: header of submitted mail."),
        _Key("recipient_delimiter", "+", v.choice("+", "-", "", expected='"+", "-" or ""'),
             'Separates an address from its detail: user+news@ reaches user@ ("" turns it off).'),
        _Key("trusted_networks", [], v.networks,
             "Relays in front of this server (a filtering appliance) whose mail on port 25 skips"
             " SPF, iprev and blocklists and is judged by the Received header they add; [] = none."),
        _Key("trusted_arc_sealers", [], v.domain_list("domains", '["google.com", "lists.example.org"]', "google.com"),
             "ARC sealers (d= of ARC-Seal) trusted with forwarded and mailing-list mail: a"
             " passing ARC chain whose newest seal is theirs overrides a DMARC failure; [] = none."),
        _Key("relay_networks", [], v.networks,
             "Devices that cannot log in (scanners, printers, old apps on your LAN), such as"
             ' ["192.168.1.20", "192.168.1.0/24"]: they may send through port 25 or 587 without'
             " AUTH or TLS, to anyone; logged and rate-limited. [] = none. Keep it small: an open"
             " relay is blocklisted within hours."),
        _Key("relay_networks_allow_wide", False, v.boolean,
             "Allow a relay_networks entry wider than a /24 (IPv6: /64) or outside private"
             " address ranges; off, such an entry stops the server at start."),
        _Key("relay_messages_per_minute", 60, v.number(1, 100_000, example=60),
             "Most messages per minute from each relay_networks address."),
    )),
    "dns": (DnsConfig, (
        _Key("nameservers", [], v.nameservers,
             'DNS servers to ask, such as ["127.0.0.1:5353"]; [] = the system\'s /etc/resolv.conf.'
             " Use a validating resolver you trust: SPF, DKIM and DMARC rely on its answers."),
        _Key("timeout", 5.0, v.number(0.1, 60, unit="seconds", example=5.0, whole=False),
             "Seconds to wait for one DNS answer before calling it a temporary failure."),
        _Key("cache_entries", 10000, v.number(0, 10_000_000, example=10000),
             "DNS answers (and absences) kept in memory, each for its TTL; 0 turns the cache off."),
        _Key("blocklists", [], v.domain_list("DNS blocklist zones", '["zen.spamhaus.org"]', "zen.spamhaus.org"),
             "DNS blocklists checked for every client of port 25, such as"
             ' ["zen.spamhaus.org"]; [] = none.'),
        _Key("authoritative_port", 53, v.number(1, 65535, example=53),
             "Port on which `postoffice check domain` asks a domain's own (authoritative) name"
             " servers; 53 everywhere except on a test network."),
        _Key("domain_blocklists", [], v.domain_list("DNS domain blocklist zones", '["dbl.spamhaus.org"]', "dbl.spamhaus.org"),
             "Domain blocklists (DBL-style: <domain>.<zone>) that `postoffice check blocklists`"
             ' asks about a domain, such as ["dbl.spamhaus.org"]; [] = the defaults that command names.'),
    )),
    "dmarc": (DmarcConfig, (
        _Key("report_address", "", v.report_address,
             "Where other servers send DMARC aggregate reports (rua=mailto: in your DMARC"
             " records; make it a user or alias): mail to it is delivered as usual and its"
             " reports are read for `postoffice dmarc reports`; \"\" = not read."),
    )),
    "imap": (ImapConfig, (
        _Key("per_user_seen", True, v.boolean,
             "On mailboxes shared with them, each user has their own read/unread (\\Seen) state."),
    )),
    "pop3": (Pop3Config, (
        _Key("processes", 1, v.number(1, 64, example=2),
             "Processes serving POP3 (1 to 64), sharing its ports: more than 1 lets downloads"
             " use more CPU cores; IMAP, SMTP and the rest stay in the main process. Login delays"
             " and connection limits hold for all processes together."),
    )),
    "outbound": (OutboundConfig, (
        _Key("retry_schedule", [60, 300, 900, 1800, 3600], v.retry_schedule,
             "Seconds to wait after each failed delivery attempt (a tenth of it added or taken at"
             " random); the last entry repeats until max_queue_time."),
        _Key("max_queue_time", 432000, v.number(1, 60 * 86400, unit="seconds", example=432000, whole=False),
             "Seconds a message may wait in the queue before it is returned to its sender"
             " (432000 = 5 days)."),
        _Key("delay_warning_after", 14400, v.number(0, 60 * 86400, unit="seconds", example=14400, whole=False),
             "Seconds queued before the sender is told the message is delayed (once, unless"
             " they asked for no such notice); 0 = never."),
        _Key("concurrency", 100, v.number(1, 1000, example=100),
             "Messages being delivered at once by this server (each destination's own limit,"
             " destination_concurrency or providers, still holds)."),
        _Key("mx_port", 25, v.number(1, 65535, example=25),
             "Port of other servers' MX hosts (25; tests point it elsewhere)."),
        _Key("source_ipv4", "", v.source_address(4),
             'IPv4 address to send from (SPF and PTR must name it); "" = any.'),
        _Key("source_ipv6", "", v.source_address(6),
             'IPv6 address to send from (SPF and PTR must name it); "" = any.'),
        _Key("destination_concurrency", 5, v.number(1, 1000, example=5),
             "Connections at once to one destination: all domains served by the same MX hosts"
             " count as one (see providers for the big ones)."),
        _Key("messages_per_connection", 100, v.number(1, 100_000, example=100),
             "Messages sent over one connection before it is closed and a new one opened."),
        _Key("ipv4_first", list(DEFAULT_IPV4_FIRST), v.domain_list("MX host suffixes", '["google.com"]', "google.com"),
             "MX host name suffixes tried over IPv4 before IPv6 (providers that refuse IPv6"
             " senders without a PTR record); others are tried over IPv6 first."),
        _Key("backoff_seconds", 60.0, v.number(1, 86400, unit="seconds", example=60.0, whole=False),
             "A destination where no server answers is left alone this long (then twice as"
             " long, and so on), its messages deferred without a connection."),
        _Key("max_backoff_seconds", 3600.0, v.number(1, 86400, unit="seconds", example=3600.0, whole=False),
             "The longest such pause."),
        _Key("connect_timeout", 30.0, v.number(1, 600, unit="seconds", example=30.0, whole=False),
             "Seconds another server may take to accept a connection before the next one is tried."),
        _Key("reply_timeout", 300.0, v.number(1, 3600, unit="seconds", example=300.0, whole=False),
             "Seconds another server may take over one whole reply, however slowly it trickles"
             " (RFC 5321: 300); DATA's go-ahead gets 0.4 times this, each block of the message"
             " 0.6 times, the reply to the end of the message twice."),
        _Key("providers", {}, v.providers,
             'Limits per provider, by MX host suffix, such as { "google.com" = { concurrency = 10,'
             " messages_per_connection = 50, messages_per_minute = 600 } }; Google, Microsoft and"
             " Yahoo/AOL have defaults. Beyond a limit mail waits; it is never refused."),
        _Key("smarthost", "", v.relay_host,
             'Relay all outgoing mail through this server, "host:port" such as'
             ' "smtp.example.net:587" (for machines that cannot send on port 25); "" = deliver'
             " to each domain's MX."),
        _Key("smarthost_tls", "starttls", v.choice("starttls", "tls", expected='"starttls" or "tls"'),
             '"starttls" (port 587) or "tls" (port 465, TLS from the first byte); TLS is always required.'),
        _Key("smarthost_user", "", v.text,
             'User name at the smarthost (often your address there); "" = no AUTH.'),
        _Key("smarthost_password_file", "", v.secret_file,
             "File holding the smarthost password (or set POSTOFFICE_SMARTHOST_PASSWORD); never"
             " put the password in this file or on a command line."),
        _Key("smarthost_auth", "plain", v.choice("plain", "xoauth2", expected='"plain" or "xoauth2"'),
             '"plain" (AUTH PLAIN, or LOGIN) or "xoauth2" (Google Workspace, Microsoft 365:'
             " an OAuth access token from smarthost_token_command or smarthost_token_file)."),
        _Key("smarthost_token_command", "", v.text,
             "XOAUTH2: a command printing a fresh access token; run again when the token is"
             " refused or older than 45 minutes."),
        _Key("smarthost_token_file", "", v.secret_file,
             "XOAUTH2: a file holding the access token, kept fresh by another program."),
        _Key("smarthost_dkim_sign", True, v.boolean,
             "DKIM-sign mail sent through a smarthost; turn off for relays that rewrite messages"
             " and sign them themselves."),
        _Key("routes", {}, v.relay_routes,
             'Relays for some recipient domains, such as { "example.com" = "relay.example.net:587" }:'
             " mail to them goes there (with the smarthost's TLS and login) instead of to their MX."),
        _Key("sender_routes", {}, v.relay_routes,
             'Relays for mail from some of your domains, such as { "shop.example.org" ='
             ' "smtp.provider.net:587" }: checked before routes and smarthost.'),
        _Key("mta_sts", True, v.boolean,
             "Honour MTA-STS (RFC 8461): a domain publishing an enforce policy gets mail only"
             " over TLS to a host its policy names, with a valid certificate."),
        _Key("dane", True, v.boolean,
             "Honour DANE TLSA records (RFC 7672) when [dns] nameservers is a validating resolver"
             " on this machine; without DNSSEC answers mail goes without DANE."),
        _Key("srs", True, v.boolean,
             "Rewrite the envelope sender of forwarded mail (SRS), so it passes SPF where it"
             " goes and bounces come back to the original sender."),
        _Key("ca_file", "", v.optional_file,
             "Certificates (PEM) of CAs trusted besides the system's when outbound TLS must be"
             " verified (MTA-STS, REQUIRETLS) and for MTA-STS policy fetches; \"\" = the system's only."),
    )),
}


# --- loading -------------------------------------------------------------------------------------

def load_config(data_dir: Path, config_file: Path | None = None) -> Config:
    """Read and check the configuration; a missing file means every key has its default.

    ``config_file`` defaults to ``data_dir / "postoffice.toml"``. Raises :class:`ConfigError`.
    """
    data_dir = Path(os.path.abspath(os.path.expanduser(data_dir)))
    path = config_file if config_file is not None else data_dir / CONFIG_FILE_NAME
    return _build(_read_toml(path), data_dir, str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, but it must be a TOML file.") from None
    except PermissionError:
        raise ConfigError(f"{path} cannot be read: this user has no permission to read it.") from None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror}.") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); "
                          "save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        # tomllib's message carries "(at line N, column M)", which is what the user needs.
        raise ConfigError(f"{path} is not valid TOML: {error}.") from None


def _build(raw: dict[str, Any], data_dir: Path, name: str) -> Config:
    for section, table in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{name}: {_unknown_section(section, table)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: {section} is {_show(table)}, but it must be a section "
                              f"written as [{section}] on a line of its own.")
    sections: dict[str, Any] = {}
    for section, (cls, keys) in _SCHEMA.items():
        table = raw.get(section, {})
        known = {key.name for key in keys}
        for key_name in table:
            if key_name not in known:
                raise ConfigError(f"{name}: {_unknown_key(section, key_name)}")
        values = {}
        for key in keys:
            value = table.get(key.name, key.default)
            if callable(value):
                value = value()
            try:
                values[key.name] = key.parse(value, data_dir)
            except v.Invalid as bad:
                shown = (f"contains {_show(bad.part)}, but each entry must be"
                         if bad.part is not None else f"is {_show(value)}, but it must be")
                raise ConfigError(f"{name}: [{section}] {key.name} {shown} {bad.expected}.") from None
        sections[section] = cls(**values)
    _check_listeners_distinct(sections["listen"], name)
    smtp = sections["smtp"]
    if (wide := v.wide_relay_networks(smtp.relay_networks)) and not smtp.relay_networks_allow_wide:
        raise ConfigError(
            f"{name}: [smtp] relay_networks lets {', '.join(wide)} send anywhere without a login,"
            " and an entry wider than a /24 (IPv6: /64) or outside private addresses makes an open"
            " relay, which is blocklisted within hours; list the devices' own addresses, or set"
            " relay_networks_allow_wide = true if you mean it.")
    return Config(data_dir=data_dir, **sections)


def _unknown_section(section: str, value: Any) -> str:
    owner = next((s for s, (_, keys) in _SCHEMA.items() if any(k.name == section for k in keys)),
                 None)
    if owner:  # `hostname = ...` written above every [section] header
        return f"{section} is not inside a section, but it must go under [{owner}]."
    if not isinstance(value, dict):
        every_key = [k.name for _, keys in _SCHEMA.values() for k in keys]
        return (f"{section} is not a known key{_suggest(section, every_key)}, and every key goes "
                "under a section such as [server].")
    known = ", ".join(f"[{s}]" for s in _SCHEMA)
    return f"[{section}] is not a known section{_suggest(section, list(_SCHEMA))}; the sections are {known}."


def _unknown_key(section: str, key_name: str) -> str:
    owners = [s for s, (_, keys) in _SCHEMA.items() if any(k.name == key_name for k in keys)]
    if owners:
        return f"[{section}] {key_name} is not a key of [{section}], but it must go under [{owners[0]}]."
    names = [k.name for k in _SCHEMA[section][1]]
    return (f"[{section}] {key_name} is not a known key{_suggest(key_name, names)}; "
            f"[{section}] has {', '.join(names)}.")


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_listeners_distinct(listen: ListenConfig, name: str) -> None:
    # Two protocols cannot share one socket; port 0 is exempt because each bind gets its own port.
    seen: dict[ListenAddress | UnixAddress, str] = {}
    for service, addresses in listen.by_service().items():
        for address in addresses:
            if isinstance(address, ListenAddress) and address.port == 0:
                continue
            if address in seen:
                raise ConfigError(f'{name}: [listen] {service} contains "{address}", but that '
                                  f"address is already used by [listen] {seen[address]} and each "
                                  "address can serve only one protocol.")
            seen[address] = service


# --- writing -------------------------------------------------------------------------------------

def render_config(config: Config) -> str:
    """The effective configuration as TOML: every key, absolute paths; load_config reads it back."""
    lines = ["# The effective postoffice configuration: every key, with absolute paths."]
    for section, (_, keys) in _SCHEMA.items():
        lines += ["", f"[{section}]"]
        values = getattr(config, section)
        for key in keys:
            value = getattr(values, key.name)
            # an empty table (routes) parses to (), which must be written as a table again
            lines.append(f"{key.name} = {_toml({} if key.default == {} and value == () else value)}")
    return "\n".join(lines) + "\n"


def default_config_text(hostname: str) -> str:
    """The commented ``postoffice.toml`` that ``postoffice init`` writes, every key at its default."""
    try:
        hostname = v.hostname(hostname, Path())
    except v.Invalid as bad:
        raise ConfigError(f"The host name {_show(hostname)} cannot be used: it must be "
                          f"{bad.expected}.") from None
    lines = ["# postoffice configuration. Every key is shown with its default; delete a line to",
             "# use the default. Relative paths are relative to the data directory."]
    for section, (_, keys) in _SCHEMA.items():
        lines += ["", f"[{section}]"]
        for key in keys:
            default = hostname if key.name == "hostname" else key.default
            # An empty table stays a comment: a line `routes = {}` would forbid the user's
            # own [outbound.routes] table later in the file (TOML cannot define it twice).
            shown = f"# {key.name} = {{}}" if default == {} else f"{key.name} = {_toml(default)}"
            lines += [f"# {key.doc}", shown]
    return "\n".join(lines) + "\n"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml(value: Any) -> str:
    """One TOML value; covers exactly the types the schema produces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:  # an optional address or file left unset
        return '""'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(str(k))} = {_toml(item)}" for k, item in value.items()) + " }"
    if isinstance(value, ProviderLimits):
        return _toml({k: getattr(value, k) for k in ("concurrency", "messages_per_connection", "messages_per_minute")})
    if isinstance(value, tuple) and value and all(isinstance(i, ProviderLimits) for i in value):
        return _toml({p.mx_suffix: p for p in value})
    if isinstance(value, tuple) and value and all(
            isinstance(i, tuple) and len(i) == 2 and isinstance(i[1], ListenAddress) for i in value):
        return _toml(dict(value))  # routes: domain = "host:port"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str | Path | ListenAddress | UnixAddress | ipaddress.IPv4Network
                  | ipaddress.IPv6Network | ipaddress.IPv4Address | ipaddress.IPv6Address):
        # TOML basic strings forbid raw control characters, DEL included.
        text = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F
                                           else c) for c in str(value))
        return f'"{text}"'
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _show(value: Any) -> str:
    """A value as the user wrote it in the file, shortened for one-line messages."""
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    elif isinstance(value, str | bool | int | float):
        text = _toml(value)
    else:  # dates and times, which TOML has but no key of ours accepts
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
