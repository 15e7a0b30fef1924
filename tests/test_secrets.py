"""No generated password appears anywhere a test run leaves text, and secret outputs are sensitive.

Runs after every other test (conftest.py sorts it last) and looks through what `secret_scan`
collected from all of them: every line the `servicedb` CLI wrote, the captured output and logs of
every test, every PostgreSQL server's log (the session's servers log every statement), and the
synthesized JSON and the cdktf CLI's output. It runs an apply, plan, verify and sql of its own
first, so it never looks at nothing.
"""

import json
from pathlib import Path

import psycopg
import pytest

from servicedb.cli import main
from servicedb.server import LocalServer

from clusters import drop_services, write_services

OWN = {"epsilon": "Service(name='epsilon')", "zeta": "Service(name='zeta', reads=(Reads(service='epsilon'),))"}

SECRET_MATERIAL = ("random_password.", "secret_string", ".password", "master_secret")
"""What a Terraform output must not carry unless it is sensitive."""


def test_a_full_run_never_shows_a_generated_password(
    server: LocalServer, tmp_path: Path, secret_scan, synthesized: dict, cli_synth
) -> None:
    services, secrets = write_services(tmp_path / "services", OWN), tmp_path / "secrets.json"
    args = ["--url", server.admin_url_with_password, "--services", str(services), "--secrets", str(secrets)]
    try:
        for command in ("apply", "plan", "verify"):
            assert main([command, *args], out=lambda _: None) == 0
        with psycopg.connect(server.admin_url, password=server.admin_password, autocommit=True) as conn:
            conn.execute("ALTER ROLE zeta_app PASSWORD 'changed-by-hand-0123456789'")
        assert main(["apply", *args], out=lambda _: None) == 0  # sets the password from its secret again
        assert main(["sql", "--services", str(services)], out=lambda _: None) == 0
    finally:
        drop_services(server, list(OWN))

    stored = {entry["password"] for entry in json.loads(secrets.read_text()).values()}
    assert stored <= set(secret_scan.passwords)  # what the scan looks for are the passwords in use
    project, result = cli_synth
    texts = [
        *secret_scan.texts(),
        *((f"synthesized {stack}", json.dumps(document)) for stack, document in synthesized.items()),
        ("cdktf synth output", result.stdout + result.stderr),
        *((str(path), path.read_text()) for path in (project / "cdktf.out").rglob("*.json")),
    ]
    # The scan is worth something only if it sees the statements that set the passwords.
    logs = "\n".join(text for where, text in texts if where.startswith("log of the server"))
    assert 'CREATE ROLE "zeta_app" LOGIN' in logs and 'ALTER ROLE "zeta_app" PASSWORD' in logs
    assert any(where.startswith("servicedb apply") for where, _ in texts)
    for index, password in enumerate(secret_scan.passwords):
        for where, text in texts:
            if password in text:  # never print the password itself, not even here
                pytest.fail(f"generated password #{index} appears in {where}")


def test_outputs_that_carry_secret_material_are_sensitive(synthesized: dict) -> None:
    outputs = {
        (stack, name): output for stack, document in synthesized.items() for name, output in document["output"].items()
    }
    assert outputs
    for (stack, name), output in outputs.items():
        if any(material in json.dumps(output["value"]) for material in SECRET_MATERIAL):
            assert output.get("sensitive") is True, f"{stack}: output {name} carries secret material"
