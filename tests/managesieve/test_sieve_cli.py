"""`postoffice sieve ...`: the scripts ManageSieve manages, from the command line."""
from __future__ import annotations

import json
from pathlib import Path

from cli_run import po

USER = "alice@example.org"
SCRIPT = 'require "fileinto";\nif header :contains "subject" "sale" { fileinto "Ads"; }\n'


def test_sieve_commands_put_activate_list_get_rename_delete_and_refuse_bad_scripts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=data)
    po("user", "add", USER, "--password-stdin", data=data, stdin="a long enough password\n")
    good = tmp_path / "filters.sieve"
    good.write_text(SCRIPT)
    bad = tmp_path / "bad.sieve"
    bad.write_text('require "fileinto";\nif true {\n  fileinto "x"\n}\n')

    refused = po("sieve", "put", USER, "main", str(bad), data=data, check=False)
    assert refused.returncode == 1 and "line 4, column 1" in refused.stderr, refused.stderr
    assert po("sieve", "check", str(bad), data=data, check=False).returncode == 1
    with_user = po("sieve", "check", USER, str(bad), data=data, check=False)
    assert with_user.returncode == 1 and "line 4, column 1" in with_user.stderr

    po("sieve", "check", str(good), data=data)
    po("sieve", "put", USER, "main", str(good), "--activate", data=data)
    po("sieve", "put", USER, "spare", "-", data=data, stdin="keep;\n")
    listed = json.loads(po("sieve", "list", USER, "--json", data=data).stdout)
    assert [(s["name"], s["active"], s["size"]) for s in listed] == [("main", True, len(SCRIPT)), ("spare", False, 6)]
    assert po("sieve", "get", USER, "main", data=data).stdout == SCRIPT
    po("sieve", "check", USER, "main", data=data)

    assert po("sieve", "delete", USER, "main", data=data, check=False).returncode == 1  # active
    po("sieve", "rename", USER, "main", "filters", data=data)
    po("sieve", "activate", USER, "spare", data=data)
    po("sieve", "delete", USER, "filters", data=data)
    po("sieve", "deactivate", USER, data=data)
    assert "spare" in po("sieve", "list", USER, data=data).stdout
    missing = po("sieve", "get", USER, "filters", data=data, check=False)
    assert missing.returncode == 1 and "no Sieve script named 'filters'" in missing.stderr
    nobody = po("sieve", "list", "nobody@example.org", data=data, check=False)
    assert nobody.returncode == 1 and "There is no user nobody@example.org" in nobody.stderr
