"""The configuration's sections and keys: one frozen dataclass per ``[section]`` and ``SCHEMA``.

``SCHEMA`` describes every key: its default, how to check it (a parser from config_values) and
the one-line explanation ``postoffice init`` writes above it. config.py loads, renders and
documents the file from it alone, so adding a key means adding it here (and a case in
tests/test_config.py).
"""
from __future__ import annotations

import dataclasses
import ipaddress
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
from postoffice.filtering.score_weights import RULES


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
    managesieve: tuple[ListenAddress, ...] = ()

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
    processes: int = 0  # 0 = one per core (net/workers.py)


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


@dataclass(frozen=True, slots=True)
class SieveConfig:
    # Defaults here as in the schema below, so code and tests can build one with only what matters.
    max_script_size: int = 1048576  # octets of one script (ManageSieve QUOTA/MAXSIZE)
    max_scripts: int = 100  # scripts per account (QUOTA/MAXSCRIPTS)
    max_redirects: int = 4  # redirect actions one script run may take (MAXREDIRECTS)
    before: Path | None = None  # the global script run before each user's; None = none
    after: Path | None = None  # the global script run after each user's (unless it stopped)


@dataclass(frozen=True, slots=True)
class JunkConfig:
    """Junk learning (filtering/junk_classifier.py): each account's own classifier."""

    learning: bool = True
    weight: float = 5.0        # score added for a sure spam (subtracted for a sure ham)
    min_trained: int = 10      # spam and ham messages each before the classifier counts
    max_tokens: int = 300_000  # tokens kept per account (the rarest, oldest go first)


@dataclass(frozen=True, slots=True)
class GreylistConfig:
    """Greylisting on port 25 (filtering/greylist.py, RFC 6647)."""

    enabled: bool = False
    delay: float = 300.0
    retry_window: float = 86400.0
    remember_days: float = 35.0
    auto_allow_after: int = 5
    skip_providers: tuple[str, ...] = ()


# Big providers send a retry from another address of a large pool, so greylisting only delays
# their mail; theirs passes when SPF passes for their domain (docs/greylisting.md).
DEFAULT_GREYLIST_PROVIDERS = [
    "gmail.com", "googlemail.com", "google.com", "outlook.com", "hotmail.com", "live.com",
    "msn.com", "microsoft.com", "yahoo.com", "aol.com", "icloud.com", "me.com", "mac.com",
    "apple.com", "amazonses.com", "protonmail.com", "proton.me", "gmx.net", "gmx.de", "web.de",
    "fastmail.com", "zoho.com", "yandex.ru", "mail.ru",
]


@dataclass(frozen=True, slots=True)
class SpamConfig:
    enabled: bool = True
    junk_threshold: float = 5.0
    refuse_threshold: float = 15.0
    weights: tuple[tuple[str, float], ...] = ()  # only the rules whose weight was changed
    blocklists: tuple[str, ...] = ()  # IP lists that add DNSBL_LISTED (those of [dns] refuse)
    uri_blocklists: tuple[str, ...] = ()
    uri_timeout: float = 2.0
    freemail_domains: tuple[str, ...] = ()  # () = mail_domains.DEFAULT_FREEMAIL


# --- the schema ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Key:
    name: str
    default: Any          # as written in the file; a callable is computed when needed
    parse: v.Parser
    doc: str              # the one-line comment written by default_config_text()


def _listen_key(name: str, default: list[str], doc: str) -> Key:
    return Key(name, default, v.listeners(unix=name == "lmtp"), doc)


SCHEMA: dict[str, tuple[type, tuple[Key, ...]]] = {
    "server": (ServerConfig, (
        Key("hostname", default_hostname, v.hostname,
             "This server's DNS name: used in greetings, HELO, Received headers and the certificate."),
        Key("log_level", "info", v.choice("debug", "info", "warning", "error"),
             'How much to log: "debug", "info", "warning" or "error".'),
        Key("log_format", "text", v.choice("text", "json"),
             '"text" (one readable line per event) or "json" (one JSON object per line); '
             "docs/logging.md lists the fields."),
        Key("public_addresses", [], v.ip_addresses,
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
        _listen_key("managesieve", ["0.0.0.0:4190"],
                    "ManageSieve (RFC 5804, STARTTLS): users upload their Sieve filters from their"
                    " mail programs (Thunderbird's Sieve add-on, Roundcube, sieve-connect)."),
    )),
    "tls": (TlsConfig, (
        Key("cert_file", "tls/cert.pem", v.path,
             "Certificate chain in PEM (e.g. certbot's fullchain.pem); re-read when it changes."),
        Key("key_file", "tls/key.pem", v.path, "Private key in PEM, without a passphrase."),
        Key("min_version", "1.2", v.choice("1.2", "1.3", expected='"1.2" or "1.3", in quotes'),
             'Oldest TLS version accepted: "1.2" or "1.3".'),
        Key("acme", False, v.boolean,
             "Get the certificate from an ACME CA (Let's Encrypt) and renew it 30 days before it"
             " expires; cert_file and key_file are then written by postoffice."),
        Key("acme_directory", v.LETS_ENCRYPT, v.https_url,
             "The ACME CA's directory URL (Let's Encrypt's staging CA, for trying things out:"
             " https://acme-staging-v02.api.letsencrypt.org/directory)."),
        Key("acme_email", "", v.contact_address,
             'Where the CA may write about the certificate (expiry, policy changes); "" = nowhere.'),
        Key("acme_names", [], v.domain_list("DNS names", '["mail.example.org"]', "mail.example.org"),
             "Names on the certificate; [] = the host name, plus mta-sts., autoconfig. and"
             " autodiscover. of each domain when they point here."),
        Key("acme_challenge", "http-01",
             v.choice("http-01", "tls-alpn-01", expected='"http-01" or "tls-alpn-01"'),
             'How the CA checks the names point here: "http-01" (port 80, [listen] http) or'
             ' "tls-alpn-01" (port 443, [listen] https).'),
        Key("acme_ca_file", "", v.optional_file,
             'CA certificates (PEM) trusted for the ACME server besides the system\'s (a private CA'
             ' such as step-ca); "" = the system\'s only.'),
    )),
    "store": (StoreConfig, (
        Key("backend", "sqlite",
             v.choice("sqlite", expected='"sqlite", the only backend available today'),
             'Where mail is kept: "sqlite" (the only backend today).'),
        Key("path", "store.sqlite3", v.path, "The SQLite database file."),
        Key("blobs", "blobs", v.path, "Directory holding message contents, one file per message."),
        Key("reader_threads", 4, v.number(1, 64, example=4),
             "Threads reading the store in parallel (1 to 64)."),
        Key("blob_trash_days", 7, v.number(0, 3650, unit="days", example=7),
             "Days removed message files stay in blobs/.trash before deletion (0 = delete at once)."),
    )),
    "limits": (LimitsConfig, (
        Key("max_message_size", 52428800, v.number(1024, unit="bytes", example=52428800),
             "Largest message accepted, in bytes (52428800 = 50 MiB)."),
        Key("max_recipients", 100, v.number(1, example=100), "Most recipients in one message."),
        Key("max_line_length", 4096, v.number(512, unit="bytes", example=4096),
             "Longest protocol line, in bytes (SMTP itself needs 1000)."),
        Key("max_connections_per_ip", 100, v.number(1, example=100),
             "Most simultaneous connections from one IP address (IPv6: one /64) that have not"
             " logged in, every protocol together: flood protection (an MX's SMTP session counts"
             " throughout). Logged-in connections count under max_userip_connections instead."),
        Key("max_userip_connections", 20, v.number(1, example=20),
             "Most simultaneous logged-in connections of one user from one IP address, for"
             " IMAP, POP3 and SMTP submission each (Dovecot's mail_max_userip_connections)."),
        Key("max_connections", 2000, v.number(1, example=2000),
             "Most simultaneous connections in all (every protocol together, per process);"
             " lowered at start if the open-file limit cannot hold them."),
        Key("line_timeout", 60.0, v.number(1, 3600, unit="seconds", example=60.0, whole=False),
             "Seconds a client has to finish a command line once it began sending it; sending"
             " slowly does not extend it."),
        Key("login_timeout", 60.0, v.number(1, 3600, unit="seconds", example=60.0, whole=False),
             "Seconds from connecting to a successful login on IMAP, POP3 and the SMTP"
             " submission ports."),
        Key("default_quota", 0, v.number(0, unit="bytes", example=1073741824),
             "Storage limit for new accounts, in bytes; 0 means unlimited."),
    )),
    "auth": (AuthConfig, (
        Key("plaintext_on_loopback", True, v.boolean,
             "Allow passwords without TLS from this machine itself (e.g. webmail)."),
        Key("failed_login_delay", 2.0, v.number(0, 60, unit="seconds", example=2.0, whole=False),
             "Seconds to wait after a failed login, doubled per failure, per IP and per account."),
        Key("login_cache_seconds", 300.0, v.number(0, 86400, unit="seconds", example=300.0, whole=False),
             "Seconds a successful login is remembered (a keyed hash, in memory only), so clients"
             " that reconnect skip the slow password check; 0 turns it off."),
    )),
    "dkim": (DkimConfig, (
        Key("selector", "mail", v.selector,
             "DKIM selector of each domain's RSA key (its Ed25519 key: <selector>-ed25519); keys live in keys/<domain>.<selector>.pem."),
    )),
    "smtp": (SmtpConfig, (
        Key("command_timeout", 300.0, v.number(1, 3600, unit="seconds", example=300.0, whole=False),
             "Seconds to wait for the next SMTP command (RFC 5321 §4.5.3.2: at least 300)."),
        Key("data_timeout", 180.0, v.number(1, 3600, unit="seconds", example=180.0, whole=False),
             "Seconds to wait for more message data during DATA or BDAT (RFC 5321: 180)."),
        Key("transaction_timeout", 1800.0,
             v.number(60, 86400, unit="seconds", example=1800.0, whole=False),
             "Seconds from MAIL FROM to the end of the message data, however steadily it"
             " trickles in."),
        Key("max_errors", 10, v.number(1, 1000, example=10),
             "Bad or unknown commands allowed before the connection is closed with 421."),
        Key("received_shows_user", False, v.boolean,
             "Name the authenticated user in the Received: header of submitted mail."),
        Key("recipient_delimiter", "+", v.choice("+", "-", "", expected='"+", "-" or ""'),
             'Separates an address from its detail: user+news@ reaches user@ ("" turns it off).'),
        Key("trusted_networks", [], v.networks,
             "Relays in front of this server (a filtering appliance) whose mail on port 25 skips"
             " SPF, iprev and blocklists and is judged by the Received header they add; [] = none."),
        Key("trusted_arc_sealers", [], v.domain_list("domains", '["google.com", "lists.example.org"]', "google.com"),
             "ARC sealers (d= of ARC-Seal) trusted with forwarded and mailing-list mail: a"
             " passing ARC chain whose newest seal is theirs overrides a DMARC failure; [] = none."),
        Key("relay_networks", [], v.networks,
             "Devices that cannot log in (scanners, printers, old apps on your LAN), such as"
             ' ["192.168.1.20", "192.168.1.0/24"]: they may send through port 25 or 587 without'
             " AUTH or TLS, to anyone; logged and rate-limited. [] = none. Keep it small: an open"
             " relay is blocklisted within hours."),
        Key("relay_networks_allow_wide", False, v.boolean,
             "Allow a relay_networks entry wider than a /24 (IPv6: /64) or outside private"
             " address ranges; off, such an entry stops the server at start."),
        Key("relay_messages_per_minute", 60, v.number(1, 100_000, example=60),
             "Most messages per minute from each relay_networks address."),
        Key("processes", 0, v.number(0, 64, example=2),
             "Processes serving SMTP, submission and LMTP (1 to 64), sharing their ports, so that"
             " judging and storing incoming mail uses more than one CPU core; 0 = one per core, at"
             " most 4. Connection limits and login delays hold for all processes together."),
    )),
    "dns": (DnsConfig, (
        Key("nameservers", [], v.nameservers,
             'DNS servers to ask, such as ["127.0.0.1:5353"]; [] = the system\'s /etc/resolv.conf.'
             " Use a validating resolver you trust: SPF, DKIM and DMARC rely on its answers."),
        Key("timeout", 5.0, v.number(0.1, 60, unit="seconds", example=5.0, whole=False),
             "Seconds to wait for one DNS answer before calling it a temporary failure."),
        Key("cache_entries", 10000, v.number(0, 10_000_000, example=10000),
             "DNS answers (and absences) kept in memory, each for its TTL; 0 turns the cache off."),
        Key("blocklists", [], v.domain_list("DNS blocklist zones", '["zen.spamhaus.org"]', "zen.spamhaus.org"),
             "DNS blocklists checked for every client of port 25, such as"
             ' ["zen.spamhaus.org"]; [] = none.'),
        Key("authoritative_port", 53, v.number(1, 65535, example=53),
             "Port on which `postoffice check domain` asks a domain's own (authoritative) name"
             " servers; 53 everywhere except on a test network."),
        Key("domain_blocklists", [], v.domain_list("DNS domain blocklist zones", '["dbl.spamhaus.org"]', "dbl.spamhaus.org"),
             "Domain blocklists (DBL-style: <domain>.<zone>) that `postoffice check blocklists`"
             ' asks about a domain, such as ["dbl.spamhaus.org"]; [] = the defaults that command names.'),
    )),
    "dmarc": (DmarcConfig, (
        Key("report_address", "", v.report_address,
             "Where other servers send DMARC aggregate reports (rua=mailto: in your DMARC"
             " records; make it a user or alias): mail to it is delivered as usual and its"
             " reports are read for `postoffice dmarc reports`; \"\" = not read."),
    )),
    "imap": (ImapConfig, (
        Key("per_user_seen", True, v.boolean,
             "On mailboxes shared with them, each user has their own read/unread (\\Seen) state."),
    )),
    "pop3": (Pop3Config, (
        Key("processes", 1, v.number(1, 64, example=2),
             "Processes serving POP3 (1 to 64), sharing its ports: more than 1 lets downloads"
             " use more CPU cores; IMAP, HTTP and the queue stay in the main process. Login delays"
             " and connection limits hold for all processes together."),
    )),
    "junk": (JunkConfig, (
        Key("learning", True, v.boolean,
             "Learn from each user's own sorting: moving mail into or out of the Junk mailbox"
             " (or the $Junk/$NotJunk keywords) trains that user's classifier (docs/spam.md)."),
        Key("weight", 5.0, v.number(0, 100, example=5.0, whole=False),
             "Spam score the learned classifier adds for a message it is sure is junk (and"
             " takes off for one it is sure is not), in proportion between; 5, the default junk"
             " threshold, lets a user's training alone move mail into or out of Junk."),
        Key("min_trained", 10, v.number(1, 1_000_000, example=10),
             "Junk and non-junk messages a user must each have trained before their classifier"
             " counts."),
        Key("max_tokens", 300_000, v.number(1000, 100_000_000, example=300_000),
             "Words kept per user for learning; beyond it the rarest and oldest are forgotten."),
    )),
    "greylist": (GreylistConfig, (
        Key("enabled", False, v.boolean,
             "Greylisting (RFC 6647) on port 25: mail from an unknown (network, sender,"
             " recipient) triplet is told to try again later, which most spam software never"
             " does (docs/greylisting.md)."),
        Key("delay", 300.0, v.number(0, 86400, unit="seconds", example=300.0, whole=False),
             "Seconds a new triplet must wait before its retry is accepted."),
        Key("retry_window", 86400.0, v.number(60, 30 * 86400, unit="seconds", example=86400.0, whole=False),
             "Seconds after the first try within which the retry must come; later, it starts over."),
        Key("remember_days", 35.0, v.number(1, 3650, unit="days", example=35.0, whole=False),
             "Days a triplet (and a client network) that passed is remembered since it was last seen."),
        Key("auto_allow_after", 5, v.number(0, 1_000_000, example=5),
             "After this many passed triplets, a client network is never greylisted again"
             " while it keeps sending; 0 turns this off."),
        Key("skip_providers", DEFAULT_GREYLIST_PROVIDERS,
             v.domain_list("domains", '["gmail.com", "outlook.com"]', "gmail.com"),
             "Sender domains of big providers (and their subdomains) never greylisted when SPF"
             " passes for them: they retry from other addresses of a large pool."),
    )),
    "spam": (SpamConfig, (
        Key("enabled", True, v.boolean,
             "Score mail arriving on port 25 with the named rules of docs/spam.md: X-Spam-Score,"
             " X-Spam-Status and X-Spam-Rules fields, Junk or refusal by the thresholds below."),
        Key("junk_threshold", 5.0, v.number(-1000, 1000, example=5.0, whole=False),
             "A score at or above this files the message into each recipient's Junk mailbox."),
        Key("refuse_threshold", 15.0, v.number(-1000, 1000, example=15.0, whole=False),
             "A score at or above this refuses the message at DATA with 550 5.7.1 naming the"
             " score and its heaviest rules (the sender is told; nothing is lost silently)."),
        Key("weights", {}, v.rule_weights(RULES),
             "Weights of rules by name, changing their defaults, such as [spam.weights] with"
             " REPLYTO_OTHER_DOMAIN = 0.5 below it; 0 turns a rule off. docs/spam.md lists them."),
        Key("blocklists", [], v.domain_list("DNS blocklist zones", '["bl.spamcop.net"]', "bl.spamcop.net"),
             "IP blocklists whose listing adds DNSBL_LISTED to the score instead of refusing the"
             " connection (lists in [dns] blocklists refuse); [] = none."),
        Key("uri_blocklists", [], v.domain_list("DNS domain blocklist zones", '["dbl.spamhaus.org"]', "dbl.spamhaus.org"),
             "Domain blocklists asked about the links in a message's text, such as"
             ' ["dbl.spamhaus.org", "multi.uribl.com"] (URIBL_LISTED); [] = none.'),
        Key("uri_timeout", 2.0, v.number(0.1, 30, unit="seconds", example=2.0, whole=False),
             "Seconds to wait for the link blocklists; what has not answered by then counts as"
             " not listed."),
        Key("freemail_domains", [], v.domain_list("domains", '["gmail.com", "gmx.de"]', "gmail.com"),
             "Free-mail domains (REPLYTO_FREEMAIL); [] = the built-in list of docs/spam.md, a list"
             " replaces it."),
    )),
    "outbound": (OutboundConfig, (
        Key("retry_schedule", [60, 300, 900, 1800, 3600], v.retry_schedule,
             "Seconds to wait after each failed delivery attempt (a tenth of it added or taken at"
             " random); the last entry repeats until max_queue_time."),
        Key("max_queue_time", 432000, v.number(1, 60 * 86400, unit="seconds", example=432000, whole=False),
             "Seconds a message may wait in the queue before it is returned to its sender"
             " (432000 = 5 days)."),
        Key("delay_warning_after", 14400, v.number(0, 60 * 86400, unit="seconds", example=14400, whole=False),
             "Seconds queued before the sender is told the message is delayed (once, unless"
             " they asked for no such notice); 0 = never."),
        Key("concurrency", 100, v.number(1, 1000, example=100),
             "Messages being delivered at once by this server (each destination's own limit,"
             " destination_concurrency or providers, still holds)."),
        Key("mx_port", 25, v.number(1, 65535, example=25),
             "Port of other servers' MX hosts (25; tests point it elsewhere)."),
        Key("source_ipv4", "", v.source_address(4),
             'IPv4 address to send from (SPF and PTR must name it); "" = any.'),
        Key("source_ipv6", "", v.source_address(6),
             'IPv6 address to send from (SPF and PTR must name it); "" = any.'),
        Key("destination_concurrency", 5, v.number(1, 1000, example=5),
             "Connections at once to one destination: all domains served by the same MX hosts"
             " count as one (see providers for the big ones)."),
        Key("messages_per_connection", 100, v.number(1, 100_000, example=100),
             "Messages sent over one connection before it is closed and a new one opened."),
        Key("ipv4_first", list(DEFAULT_IPV4_FIRST), v.domain_list("MX host suffixes", '["google.com"]', "google.com"),
             "MX host name suffixes tried over IPv4 before IPv6 (providers that refuse IPv6"
             " senders without a PTR record); others are tried over IPv6 first."),
        Key("backoff_seconds", 60.0, v.number(1, 86400, unit="seconds", example=60.0, whole=False),
             "A destination where no server answers is left alone this long (then twice as"
             " long, and so on), its messages deferred without a connection."),
        Key("max_backoff_seconds", 3600.0, v.number(1, 86400, unit="seconds", example=3600.0, whole=False),
             "The longest such pause."),
        Key("connect_timeout", 30.0, v.number(1, 600, unit="seconds", example=30.0, whole=False),
             "Seconds another server may take to accept a connection before the next one is tried."),
        Key("reply_timeout", 300.0, v.number(1, 3600, unit="seconds", example=300.0, whole=False),
             "Seconds another server may take over one whole reply, however slowly it trickles"
             " (RFC 5321: 300); DATA's go-ahead gets 0.4 times this, each block of the message"
             " 0.6 times, the reply to the end of the message twice."),
        Key("providers", {}, v.providers,
             'Limits per provider, by MX host suffix, such as { "google.com" = { concurrency = 10,'
             " messages_per_connection = 50, messages_per_minute = 600 } }; Google, Microsoft and"
             " Yahoo/AOL have defaults. Beyond a limit mail waits; it is never refused."),
        Key("smarthost", "", v.relay_host,
             'Relay all outgoing mail through this server, "host:port" such as'
             ' "smtp.example.net:587" (for machines that cannot send on port 25); "" = deliver'
             " to each domain's MX."),
        Key("smarthost_tls", "starttls", v.choice("starttls", "tls", expected='"starttls" or "tls"'),
             '"starttls" (port 587) or "tls" (port 465, TLS from the first byte); TLS is always required.'),
        Key("smarthost_user", "", v.text,
             'User name at the smarthost (often your address there); "" = no AUTH.'),
        Key("smarthost_password_file", "", v.secret_file,
             "File holding the smarthost password (or set POSTOFFICE_SMARTHOST_PASSWORD); never"
             " put the password in this file or on a command line."),
        Key("smarthost_auth", "plain", v.choice("plain", "xoauth2", expected='"plain" or "xoauth2"'),
             '"plain" (AUTH PLAIN, or LOGIN) or "xoauth2" (Google Workspace, Microsoft 365:'
             " an OAuth access token from smarthost_token_command or smarthost_token_file)."),
        Key("smarthost_token_command", "", v.text,
             "XOAUTH2: a command printing a fresh access token; run again when the token is"
             " refused or older than 45 minutes."),
        Key("smarthost_token_file", "", v.secret_file,
             "XOAUTH2: a file holding the access token, kept fresh by another program."),
        Key("smarthost_dkim_sign", True, v.boolean,
             "DKIM-sign mail sent through a smarthost; turn off for relays that rewrite messages"
             " and sign them themselves."),
        Key("routes", {}, v.relay_routes,
             'Relays for some recipient domains, such as { "example.com" = "relay.example.net:587" }:'
             " mail to them goes there (with the smarthost's TLS and login) instead of to their MX."),
        Key("sender_routes", {}, v.relay_routes,
             'Relays for mail from some of your domains, such as { "shop.example.org" ='
             ' "smtp.provider.net:587" }: checked before routes and smarthost.'),
        Key("mta_sts", True, v.boolean,
             "Honour MTA-STS (RFC 8461): a domain publishing an enforce policy gets mail only"
             " over TLS to a host its policy names, with a valid certificate."),
        Key("dane", True, v.boolean,
             "Honour DANE TLSA records (RFC 7672) when [dns] nameservers is a validating resolver"
             " on this machine; without DNSSEC answers mail goes without DANE."),
        Key("srs", True, v.boolean,
             "Rewrite the envelope sender of forwarded mail (SRS), so it passes SPF where it"
             " goes and bounces come back to the original sender."),
        Key("ca_file", "", v.optional_file,
             "Certificates (PEM) of CAs trusted besides the system's when outbound TLS must be"
             " verified (MTA-STS, REQUIRETLS) and for MTA-STS policy fetches; \"\" = the system's only."),
    )),
    "sieve": (SieveConfig, (
        Key("max_script_size", 1048576, v.number(1024, 64 * 1048576, unit="bytes", example=1048576),
             "Largest Sieve script a user may upload (ManageSieve or `postoffice sieve put`), in bytes."),
        Key("max_scripts", 100, v.number(1, 100_000, example=100),
             "Most Sieve scripts one user may keep (one of them active)."),
        Key("max_redirects", 4, v.number(0, 100, example=4),
             "Most redirect actions one run of a user's script may take (ManageSieve announces it"
             " as MAXREDIRECTS); more are runtime errors and the message is kept."),
        Key("before", "", v.optional_file,
             "A Sieve script run for every user before their own script (e.g. spam to Junk), a"
             ' file relative to the data directory or absolute; "" = none.'),
        Key("after", "", v.optional_file,
             "A Sieve script run for every user after their own script (unless it stopped or"
             ' discarded); "" = none.'),
    )),
}
