"""Where login users' passwords come from: a local 0600 JSON file, or AWS Secrets Manager.

Both hold one secret per login user in the RDS JSON shape (`engine`, `host`, `port`, `dbname`,
`username`, `password`, `dbClusterIdentifier`), named as the plan names it. The local file is
for servers the CLI manages itself (the demo, a laptop); on AWS the secrets are the ones the
Terraform stack created, and the CLI only reads them. Nothing here prints a password.
"""

import json
import os
import secrets
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path

from servicedb.plan import Plan

ALPHABET = string.ascii_letters + string.digits + "-_.~"
"""The generated passwords' characters: the same as the Terraform stack's `random_password`."""


class SecretsError(RuntimeError):
    """A secret is missing or unreadable; the message names it and says what to do."""


def generate_password(length: int) -> str:
    while True:
        password = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


class LocalSecrets:
    """A JSON file of secrets, readable by its owner only; missing passwords are generated."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretsError(
                f"{self.path}: readable by others (mode {mode:o}); run chmod 600 {self.path} after checking who read it"
            )
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as error:
            raise SecretsError(f"{self.path}: not valid JSON (line {error.lineno}); fix or remove the file") from None

    def stored_passwords(self) -> dict[str, str]:
        """User name to password, of what the file holds now; generates nothing."""
        return {e["username"]: e["password"] for e in self.read().values() if "username" in e and "password" in e}

    def passwords(self, plan: Plan, *, host: str, port: int) -> dict[str, str]:
        """Every login user's password, generating and saving the missing ones first."""
        stored = self.read()
        changed = False
        for service in plan.services:
            for secret in service.secrets:
                entry = stored.get(secret.name)
                if not entry or not entry.get("password") or entry.get("username") != secret.username:
                    stored[secret.name] = {
                        **secret.fields,
                        "host": host,
                        "port": port,
                        "password": generate_password(secret.password_length),
                    }
                    changed = True
        if changed:
            self.write(stored)
        return self.stored_passwords()

    def write(self, stored: Mapping[str, object]) -> None:
        """Write atomically with mode 0600, so a crash never leaves a half-written file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(stored, file, indent=2, sort_keys=True)
                file.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class SecretsManagerSecrets:
    """The secrets the Terraform stack created, read from AWS Secrets Manager."""

    def __init__(self, client: object, *, secret_ids: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.secret_ids = dict(secret_ids or {})
        """User name to the id (ARN) its secret is read by. @default - the secret's name."""

    def passwords(self, plan: Plan, **_: object) -> dict[str, str]:
        result, missing = {}, []
        for service in plan.services:
            for secret in service.secrets:
                try:
                    value = self.client.get_secret_value(SecretId=self.secret_ids.get(secret.username, secret.name))
                except self.client.exceptions.ResourceNotFoundException:
                    missing.append(secret.name)
                    continue
                try:
                    document = json.loads(value["SecretString"])
                    result[secret.username] = document["password"]
                except (KeyError, ValueError):
                    raise SecretsError(
                        f"secret {secret.name}: no 'password' in its JSON; it is not in the RDS shape"
                    ) from None
        if missing:
            raise SecretsError(
                f"{len(missing)} secrets do not exist in Secrets Manager: {', '.join(missing)}; "
                f"deploy the database-access stack first (it creates them)"
            )
        return result


def master_credentials(client: object, secret_id: str) -> tuple[str, str]:
    """The cluster admin's user name and password, from its secret (`username`, `password`), as
    RDS writes the master user's secret."""
    try:
        value = client.get_secret_value(SecretId=secret_id)
    except client.exceptions.ResourceNotFoundException:
        raise SecretsError(
            f"master secret {secret_id} does not exist; check the environment's master_secret_arn"
        ) from None
    try:
        document = json.loads(value["SecretString"])
        return document["username"], document["password"]
    except (KeyError, TypeError, ValueError):
        raise SecretsError(f"master secret {secret_id}: no 'username' and 'password' in its JSON") from None
