"""postoffice.toml: defaults, round trips, one-sentence errors, path resolution, dev listeners."""
from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path

import pytest

import postoffice.config as config_module
from postoffice.config import (
    AuthConfig,
    ConfigError,
    ListenAddress,
    ServerConfig,
    UnixAddress,
    default_config_text,
    default_hostname,
    load_config,
    render_config,
)


def write_config(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "postoffice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(data_dir: Path, text: str) -> str:
    write_config(data_dir, text)
    with pytest.raises(ConfigError) as caught:
        load_config(data_dir)
    return str(caught.value)


# --- defaults ------------------------------------------------------------------------------------

def test_missing_file_gives_every_default(tmp_path: Path) -> None:
    config = load_config(tmp_path)

    assert config.data_dir == tmp_path
    assert config.server.log_level == "info"
    assert config.server.log_format == "text"
    assert config.listen.smtp == (ListenAddress("0.0.0.0", 25),)
    assert config.listen.submission == (ListenAddress("0.0.0.0", 587),)
    assert config.listen.submissions == (ListenAddress("0.0.0.0", 465),)
    assert config.listen.imap == (ListenAddress("0.0.0.0", 143),)
    assert config.listen.imaps == (ListenAddress("0.0.0.0", 993),)
    assert config.listen.pop3 == (ListenAddress("0.0.0.0", 110),)
    assert config.listen.pop3s == (ListenAddress("0.0.0.0", 995),)
    assert config.listen.lmtp == ()
    assert config.tls.cert_file == tmp_path / "tls" / "cert.pem"
    assert config.tls.key_file == tmp_path / "tls" / "key.pem"
    assert config.tls.min_version == "1.2"
    assert (config.store.backend, config.store.reader_threads) == ("sqlite", 4)
    assert config.store.path == tmp_path / "store.sqlite3"
    assert config.store.blobs == tmp_path / "blobs"
    assert config.limits == config_module.LimitsConfig(
        max_message_size=52428800, max_recipients=100, max_line_length=4096,
        max_connections_per_ip=100, max_userip_connections=20, max_connections=2000, line_timeout=60.0, login_timeout=60.0,
        default_quota=0)
    assert config.auth == AuthConfig(plaintext_on_loopback=True, failed_login_delay=2.0, login_cache_seconds=300.0)
    assert config.dkim.selector == "mail"
    assert config.pop3.processes == 1


def test_empty_file_is_the_same_as_no_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    from_empty_file = load_config(tmp_path)
    path.unlink()
    assert load_config(tmp_path) == from_empty_file


@pytest.mark.parametrize(("fqdn", "expected"), [
    ("Mail.Example.COM.", "mail.example.com"),
    ("build_box_7", "localhost"),  # not a host name: the defaults must still be valid
])
def test_default_hostname_comes_from_getfqdn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              fqdn: str, expected: str) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda *args: fqdn)
    assert load_config(tmp_path).server.hostname == expected
    assert default_hostname() == expected


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.hostname = "other.example"  # type: ignore[misc]


# --- round trips ---------------------------------------------------------------------------------

EVERY_KEY_CHANGED = """
[server]
hostname = "mx1.example.org"
log_level = "DEBUG"
log_format = "json"
public_addresses = ["203.0.113.7", "2001:DB8::7", "203.0.113.7"]

[listen]
smtp = ["[::]:25", "192.0.2.1:2525"]
submission = ["localhost:1587"]
submissions = []
imap = ["[::1]:1143"]
imaps = ["127.0.0.1:1993"]
pop3 = []
pop3s = ["0.0.0.0:1995"]
lmtp = ["unix:run/lmtp.sock", "127.0.0.1:24"]
http = []
https = ["[::]:8443", "127.0.0.1:443"]
managesieve = ["127.0.0.1:4190"]

[tls]
cert_file = "/etc/letsencrypt/live/mx1/fullchain.pem"
key_file = "keys dir/\\"odd\\" näme.pem"
min_version = "1.3"
acme = true
acme_directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
acme_email = "Hostmaster@Example.org"
acme_names = ["mx1.example.org", "MTA-STS.example.org."]
acme_challenge = "tls-alpn-01"
acme_ca_file = "/etc/ssl/private-ca.pem"

[store]
backend = "sqlite"
path = "db/mail.sqlite3"
blobs = "../shared-blobs"
reader_threads = 64
blob_trash_days = 30

[limits]
max_message_size = 1024
max_recipients = 1000
max_line_length = 512
max_connections_per_ip = 1
max_userip_connections = 3
max_connections = 50
line_timeout = 5.5
login_timeout = 30
default_quota = 1073741824

[auth]
plaintext_on_loopback = false
failed_login_delay = 0
login_cache_seconds = 30.0

[dkim]
selector = "2024a"

[smtp]
command_timeout = 600
data_timeout = 60.5
transaction_timeout = 600
max_errors = 3
received_shows_user = true
recipient_delimiter = "-"
trusted_networks = ["10.0.0.0/8", "2001:db8::1"]
trusted_arc_sealers = ["Google.com."]
relay_networks = ["192.168.1.20", "10.1.2.0/24"]
relay_networks_allow_wide = true
relay_messages_per_minute = 10
processes = 3

[dns]
nameservers = ["127.0.0.1:5353", "::1"]
timeout = 2.5
cache_entries = 0
blocklists = ["zen.spamhaus.org"]
authoritative_port = 5300
domain_blocklists = ["dbl.spamhaus.org"]

[imap]
per_user_seen = false

[pop3]
processes = 3

[dmarc]
report_address = "DMARC-Reports@Example.org"

[spam]
enabled = false
junk_threshold = 4
refuse_threshold = 9.5
blocklists = ["bl.spamcop.net"]
uri_blocklists = ["dbl.spamhaus.org", "multi.uribl.com"]
uri_timeout = 1
freemail_domains = ["gmail.com", "Example-Free.net."]

[spam.weights]
SPF_NONE = 1
DKIM_PASS = -2.5

[outbound]
retry_schedule = [30, 120.5]
max_queue_time = 86400
delay_warning_after = 0
concurrency = 5
mx_port = 2525
source_ipv4 = "127.0.0.2"
source_ipv6 = "::1"
destination_concurrency = 3
messages_per_connection = 20
ipv4_first = ["google.com"]
backoff_seconds = 30
max_backoff_seconds = 600
connect_timeout = 5
reply_timeout = 42.5
smarthost = "relay.example.net:587"
smarthost_tls = "tls"
smarthost_user = "me@example.net"
smarthost_password_file = "relay password"
smarthost_auth = "xoauth2"
smarthost_token_command = "oauth2-token --account me"
smarthost_token_file = "token"
smarthost_dkim_sign = false
sender_routes = { "shop.example.org" = "smtp.provider.net:465" }
mta_sts = false
dane = false
srs = false
ca_file = "certs/private-ca.pem"

[sieve]
max_script_size = 2048
max_scripts = 3
max_redirects = 1
before = "sieve/before.sieve"
after = "/etc/postoffice/after.sieve"

[junk]
learning = false
weight = 5.5
min_trained = 50
max_tokens = 20000

[greylist]
enabled = true
delay = 60
retry_window = 3600
remember_days = 7
auto_allow_after = 0
skip_providers = ["Gmail.com."]

[outbound.routes]
"Example.COM" = "[2001:db8::25]:2525"

[outbound.providers."google.com"]
concurrency = 2
"""


def test_every_key_round_trips_through_render_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_config(data_dir, EVERY_KEY_CHANGED)
    config = load_config(data_dir)
    defaults = load_config(tmp_path / "empty")
    # The fixture really changes every key, so the round trip below covers them all.
    for section in dataclasses.fields(config)[1:]:
        for key in dataclasses.fields(getattr(config, section.name)):
            if (section.name, key.name) != ("store", "backend"):  # only one backend exists today
                assert (getattr(getattr(config, section.name), key.name)
                        != getattr(getattr(defaults, section.name), key.name)), key.name

    rendered = tmp_path / "rendered.toml"
    rendered.write_text(render_config(config), encoding="utf-8")

    assert load_config(data_dir, rendered) == config
    assert config.listen.lmtp == (UnixAddress(data_dir / "run" / "lmtp.sock"),
                                  ListenAddress("127.0.0.1", 24))
    assert config.tls.key_file == data_dir / "keys dir" / '"odd" näme.pem'
    assert config.server.log_level == "debug"
    assert [str(a) for a in config.server.public_addresses] == ["203.0.113.7", "2001:db8::7"]
    assert isinstance(config.auth.failed_login_delay, float)


@pytest.mark.parametrize("variant", ["defaults", "dev", "ephemeral"])
def test_render_config_writes_every_key_with_absolute_paths(tmp_path: Path, variant: str) -> None:
    config = load_config(tmp_path)
    config = {"defaults": config, "dev": config.with_dev_listeners(),
              "ephemeral": config.with_ephemeral_listeners()}[variant]
    text = render_config(config)
    rendered = tmp_path / "rendered.toml"
    rendered.write_text(text, encoding="utf-8")

    assert load_config(tmp_path, rendered) == config
    assert f'cert_file = "{tmp_path}/tls/cert.pem"' in text
    for section in dataclasses.fields(config)[1:]:
        assert f"[{section.name}]" in text
        for key in dataclasses.fields(getattr(config, section.name)):
            assert re.search(rf"^{key.name} = ", text, re.MULTILINE), key.name


def test_default_config_text_has_a_comment_for_every_key_and_loads(tmp_path: Path) -> None:
    text = default_config_text("mail.example.test")
    write_config(tmp_path, text)

    expected = load_config(tmp_path / "nothing")
    assert load_config(tmp_path) == dataclasses.replace(
        expected, data_dir=tmp_path, server=ServerConfig("mail.example.test", "info"),
        tls=dataclasses.replace(expected.tls, cert_file=tmp_path / "tls/cert.pem",
                                key_file=tmp_path / "tls/key.pem"),
        store=dataclasses.replace(expected.store, path=tmp_path / "store.sqlite3",
                                  blobs=tmp_path / "blobs"))
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_0-9]+ = ", line):
            assert lines[number - 1].startswith("# "), line
    assert 'cert_file = "tls/cert.pem"' in text  # relative, so the directory can move


def test_default_config_text_refuses_a_bad_host_name() -> None:
    with pytest.raises(ConfigError, match="mail_host"):
        default_config_text("mail_host")


# --- paths and listeners -------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_data_dir(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "data", '[store]\npath = "db/../db/x.sqlite3"\nblobs = "/srv/blobs"\n'
                 '[listen]\nlmtp = ["unix:lmtp.sock"]\n')
    config = load_config(Path("data"))

    assert config.data_dir == tmp_path / "data"
    assert config.store.path == tmp_path / "data" / "db" / "x.sqlite3"
    assert config.store.blobs == Path("/srv/blobs")
    assert config.tls.cert_file == tmp_path / "data" / "tls" / "cert.pem"
    assert config.listen.lmtp == (UnixAddress(tmp_path / "data" / "lmtp.sock"),)


def test_config_file_outside_the_data_dir_still_resolves_against_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc" / "po.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('[store]\npath = "s.sqlite3"\n', encoding="utf-8")
    assert load_config(tmp_path / "data", elsewhere).store.path == tmp_path / "data" / "s.sqlite3"


def test_ipv6_and_named_hosts_parse(tmp_path: Path) -> None:
    write_config(tmp_path, '[listen]\nsmtp = ["[::1]:25", "[2001:db8::5]:2525", "mx.local:26"]\n')
    smtp = load_config(tmp_path).listen.smtp
    assert smtp == (ListenAddress("::1", 25), ListenAddress("2001:db8::5", 2525),
                    ListenAddress("mx.local", 26))
    assert [str(a) for a in smtp] == ["[::1]:25", "[2001:db8::5]:2525", "mx.local:26"]


def test_dev_listeners_use_10000_plus_the_standard_port(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    dev = config.with_dev_listeners()
    assert {name: [str(a) for a in addrs] for name, addrs in dev.listen.by_service().items()} == {
        "smtp": ["127.0.0.1:10025"], "submission": ["127.0.0.1:10587"],
        "submissions": ["127.0.0.1:10465"], "imap": ["127.0.0.1:10143"],
        "imaps": ["127.0.0.1:10993"], "pop3": ["127.0.0.1:10110"],
        "pop3s": ["127.0.0.1:10995"], "lmtp": ["127.0.0.1:10024"],
        "http": ["127.0.0.1:10080"], "https": ["127.0.0.1:10443"],
        "managesieve": ["127.0.0.1:14190"],
    }
    assert dataclasses.replace(dev, listen=config.listen) == config


def test_ephemeral_listeners_are_loopback_port_zero(tmp_path: Path) -> None:
    listen = load_config(tmp_path).with_ephemeral_listeners().listen
    assert set(listen.by_service().values()) == {(ListenAddress("127.0.0.1", 0),)}
    assert len(listen.by_service()) == 11
    assert listen.http == listen.https == (ListenAddress("127.0.0.1", 0),)


# --- errors --------------------------------------------------------------------------------------

# (scenario, file text, fragments the one sentence must contain: the key and the bad value)
ERRORS = [
    ("string_for_number", '[limits]\nmax_message_size = "50MB"', ["[limits] max_message_size", '"50MB"']),
    ("bool_for_number", "[limits]\nmax_recipients = true", ["[limits] max_recipients", "true"]),
    ("float_for_whole", "[limits]\nmax_recipients = 1.5", ["[limits] max_recipients", "1.5"]),
    ("over_maximum", "[store]\nreader_threads = 65", ["[store] reader_threads", "65", "between 1 and 64"]),
    ("under_minimum", "[limits]\nmax_line_length = 100", ["[limits] max_line_length", "100", "at least 512"]),
    ("negative_quota", "[limits]\ndefault_quota = -1", ["[limits] default_quota", "-1"]),
    ("beyond_64_bits", "[limits]\nmax_message_size = 99999999999999999999", ["[limits] max_message_size", "99999999999999999999"]),
    ("seconds_range", "[auth]\nfailed_login_delay = 90.5", ["[auth] failed_login_delay", "90.5", "seconds"]),
    ("seconds_nan", "[auth]\nfailed_login_delay = nan", ["[auth] failed_login_delay", "nan"]),
    ("string_for_bool", '[auth]\nplaintext_on_loopback = "yes"', ["[auth] plaintext_on_loopback", '"yes"', "true or false"]),
    ("bad_log_level", '[server]\nlog_level = "verbose"', ["[server] log_level", '"verbose"', '"debug"']),
    ("bad_log_format", '[server]\nlog_format = "xml"', ["[server] log_format", '"xml"', '"json"']),
    ("future_backend", '[store]\nbackend = "postgresql"', ["[store] backend", '"postgresql"', '"sqlite"']),
    ("number_for_tls_version", "[tls]\nmin_version = 1.3", ["[tls] min_version", "1.3", "in quotes"]),
    ("old_tls_version", '[tls]\nmin_version = "1.1"', ["[tls] min_version", '"1.1"']),
    ("bad_hostname", '[server]\nhostname = "mail_server"', ["[server] hostname", '"mail_server"']),
    ("unicode_hostname", '[server]\nhostname = "pöst.example"', ["[server] hostname", "xn--pst-sna.example"]),
    ("network_for_public_address", '[server]\npublic_addresses = ["203.0.113.0/24"]',
     ["[server] public_addresses", '"203.0.113.0/24"', "IP address"]),
    ("bad_selector", '[dkim]\nselector = "my key"', ["[dkim] selector", '"my key"']),
    ("no_pop3_process", "[pop3]\nprocesses = 0", ["[pop3] processes", "0"]),
    ("number_for_path", "[store]\npath = 5", ["[store] path", "5"]),
    ("empty_path", '[tls]\ncert_file = ""', ["[tls] cert_file", '""']),
    ("port_too_big", '[listen]\nsmtp = ["0.0.0.0:99999"]', ["[listen] smtp", '"0.0.0.0:99999"', "host:port"]),
    ("no_port", '[listen]\nimap = ["0.0.0.0"]', ["[listen] imap", '"0.0.0.0"']),
    ("ipv6_without_brackets", '[listen]\nimap = ["::1:143"]', ["[listen] imap", '"::1:143"']),
    ("bad_host", '[listen]\npop3 = ["mail server:110"]', ["[listen] pop3", '"mail server:110"']),
    ("unix_outside_lmtp", '[listen]\nsmtp = ["unix:/run/smtp"]', ["[listen] smtp", '"unix:/run/smtp"']),
    ("number_in_list", "[listen]\nsmtp = [25]", ["[listen] smtp", "25"]),
    ("string_for_list", '[listen]\nsmtp = "0.0.0.0:25"', ["[listen] smtp", '"0.0.0.0:25"', "list"]),
    ("shared_address", '[listen]\nsmtp = ["127.0.0.1:2525"]\nimap = ["127.0.0.1:2525"]', ["[listen] imap", '"127.0.0.1:2525"', "[listen] smtp"]),
    ("unknown_section", "[limit]\nmax_recipients = 5", ["[limit]", "did you mean limits?"]),
    ("unknown_key", "[limits]\nmax_mesage_size = 5", ["[limits] max_mesage_size", "did you mean max_message_size?"]),
    ("key_in_wrong_section", '[server]\nselector = "mail"', ["[server] selector", "[dkim]"]),
    ("key_outside_sections", 'hostname = "mx.example"\n[server]', ["hostname", "[server]"]),
    ("section_not_a_table", "server = 1", ["server", "1", "[server]"]),
    ("unknown_key_outside_sections", "max_mesage_size = 1", ["max_mesage_size", "did you mean max_message_size?"]),
    ("toml_syntax", "[server]\nhostname = \n", ["not valid TOML", "line 2"]),
    ("report_address_no_domain", '[dmarc]\nreport_address = "dmarc-reports"', ["[dmarc] report_address", '"dmarc-reports"']),
    ("empty_retry_schedule", "[outbound]\nretry_schedule = []", ["[outbound] retry_schedule", "[]", "list"]),
    ("retry_step_of_zero", "[outbound]\nretry_schedule = [60, 0]", ["[outbound] retry_schedule", "0", "from 1 to 86400"]),
    ("ipv6_for_source_ipv4", '[outbound]\nsource_ipv4 = "::1"', ["[outbound] source_ipv4", '"::1"', "IPv4"]),
    ("no_mx_port", "[outbound]\nmx_port = 0", ["[outbound] mx_port", "0"]),
    ("smarthost_without_port", '[outbound]\nsmarthost = "relay.example.net"', ["[outbound] smarthost", "host:port"]),
    ("route_to_nowhere", '[outbound.routes]\n"example.com" = ""', ["[outbound] routes", "host:port"]),
    ("provider_typo", '[outbound.providers."google.com"]\nconcurency = 3', ["[outbound] providers", "concurrency"]),
    ("open_relay", '[smtp]\nrelay_networks = ["192.168.1.20", "0.0.0.0/0"]',
     ["[smtp] relay_networks", "0.0.0.0/0", "open relay", "relay_networks_allow_wide = true"]),
    ("public_relay_address", '[smtp]\nrelay_networks = ["8.8.8.8"]', ["8.8.8.8/32", "open relay"]),
    ("unknown_smarthost_tls", '[outbound]\nsmarthost_tls = "ssl"', ["[outbound] smarthost_tls", '"starttls" or "tls"']),
    ("acme_directory_over_http", '[tls]\nacme_directory = "http://ca.example/dir"', ["[tls] acme_directory", "https://"]),
    ("acme_unknown_challenge", '[tls]\nacme_challenge = "dns-01"', ["[tls] acme_challenge", '"http-01" or "tls-alpn-01"']),
    ("acme_name_not_dns", '[tls]\nacme_names = ["mail example"]', ["[tls] acme_names", "mail example"]),
    ("spam_weight_unknown_rule", "[spam.weights]\nREPLY_TO_FREEMAIL = 1",
     ["[spam] weights", '"REPLY_TO_FREEMAIL"', "did you mean REPLYTO_FREEMAIL?", "docs/spam.md"]),
    ("spam_weight_not_a_number", '[spam.weights]\nSPF_NONE = "high"', ["[spam] weights", '"high"', "SPF_NONE"]),
    ("spam_thresholds_reversed", "[spam]\njunk_threshold = 20", ["[spam] junk_threshold", "20", "refuse_threshold (15)"]),
]


@pytest.mark.parametrize(("text", "fragments"), [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_each_error_is_one_sentence_naming_file_key_and_value(
        tmp_path: Path, text: str, fragments: list[str]) -> None:
    message = load_error(tmp_path, text)

    assert message.startswith(f"{tmp_path / 'postoffice.toml'}")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message and message.endswith(".")
    assert not re.search(r"[.!?] [A-Z]", message), "more than one sentence"


def test_the_documented_example_message(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[limits]\nmax_message_size = "50MB"\n')
    assert message == (f'{tmp_path / "postoffice.toml"}: [limits] max_message_size is "50MB", '
                       "but it must be a whole number of bytes such as 52428800.")


def test_unreadable_or_undecodable_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "postoffice.toml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[server]\nhostname = "p\xf6st"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path, latin1)


def test_all_names_are_exported() -> None:
    for name in config_module.__all__:
        assert hasattr(config_module, name), name


def test_a_config_from_before_the_per_user_limit_still_loads(tmp_path: Path) -> None:
    """`init` used to write `max_connections_per_ip = 20`, which counted every connection; the
    file loads unchanged, the key now counts connections before login, and logged-in ones get
    the per-user limit's default."""
    path = write_config(tmp_path, "[limits]\nmax_connections_per_ip = 20\nmax_connections = 2000\n")
    limits = load_config(tmp_path, path).limits
    assert (limits.max_connections_per_ip, limits.max_userip_connections) == (20, 20)
    text = default_config_text("mail.example.test")
    assert "max_connections_per_ip = 100\n" in text and "max_userip_connections = 20\n" in text
    assert "# Most simultaneous logged-in connections of one user from one IP address" in text
