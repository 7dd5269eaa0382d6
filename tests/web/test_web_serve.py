"""`postoffice serve` opens the web listeners with the mail listeners, advertises the ports those
got, and stops cleanly."""
from __future__ import annotations

import http.client
import re
import ssl
from pathlib import Path
from xml.etree import ElementTree

from postoffice.queue.mta_sts_policy import parse_policy
from serve_process import DOMAIN, Serve, init_data


def test_serve_answers_autoconfig_with_the_ports_it_listens_on(tmp_path: Path) -> None:
    data = init_data(tmp_path / "data", ())
    config = (data / "postoffice.toml").read_text()
    for name in ("imaps", "submission", "http", "https"):
        config = re.sub(rf"^{name} = .*$", f'{name} = ["127.0.0.1:0"]', config, flags=re.M)
    (data / "postoffice.toml").write_text(config)
    serve = Serve(data).started()
    try:
        log = serve.log_text()
        ports = {name: int(port) for name, port in re.findall(r"listening: (\w+) on 127\.0\.0\.1:(\d+)", log)}
        assert set(ports) == {"imaps", "submission", "http", "https"}, log

        conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=30)
        conn.request("GET", f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=ann@{DOMAIN}")
        response = conn.getresponse()
        assert response.status == 200
        provider = ElementTree.fromstring(response.read()).find("emailProvider")
        conn.close()
        assert provider is not None
        assert [(s.get("type"), s.findtext("port"), s.findtext("socketType")) for s in provider
                if s.tag.endswith("Server")] == [
            ("imap", str(ports["imaps"]), "SSL"), ("smtp", str(ports["submission"]), "STARTTLS")]

        context = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
        conn = http.client.HTTPSConnection("localhost", ports["https"], context=context, timeout=30)
        conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": f"mta-sts.{DOMAIN}"})
        response = conn.getresponse()
        assert response.status == 200
        assert parse_policy(response.read().decode()).mx == ("mail.example.org",)
        conn.close()
    finally:
        log = serve.stop()
    assert "Traceback" not in log
