"""Where login users' passwords come from: a local 0600 JSON file, or AWS Secrets Manager.

Both hold one secret per login kind in the RDS JSON shape (`engine`, `host`, `port`, `dbname`,
`username`, `password`, `dbClusterIdentifier`), named as the plan names it; a user that logs in
with IAM has no password. The local file is for servers the CLI manages itself (the demo, a
laptop); on AWS the secrets are the ones the Terraform stack created, and the CLI only reads them.
Nothing here prints a password.

Rotation: the local file keeps, with each password, the rotation it was generated for
(`rotation`), and generates a new one when the plan's rotation of the user differs. With
alternating users, the secret carries the active user, and `<secret name>:inactive` the other
one, whose password still logs in until the next rotation. In Secrets Manager only the active
user's password exists; the inactive one's lives in the Terraform state.
"""

import json
import os
import secrets
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path

from servicedb.plan import Plan, Role, Secret

ALPHABET = string.ascii_letters + string.digits + "-_.~"
"""The generated passwords' characters: the same as the Terraform stack's `random_password`."""

INACTIVE = ":inactive"
"""Suffix of the local entry of an alternating pair's inactive user, after its secret's name."""


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

    def stale_users(self, plan: Plan) -> set[str]:
        """Password users whose stored password is missing or from another rotation: `passwords`
        would generate a new one for them."""
        by_user = entries_by_user(self.read())
        return {
            user.name
            for service in plan.services
            for user in service.login_users
            if not user.iam and not current_password(by_user.get(user.name), user.password_rotation)
        }

    def passwords(self, plan: Plan, *, host: str, port: int) -> dict[str, str]:
        """Every password user's password, generating and saving the missing and rotated ones first."""
        before = self.read()
        stored = dict(before)
        by_user = entries_by_user(before)
        for service in plan.services:
            for secret in service.secrets:
                for username in secret.users:
                    key = secret.name if username == secret.username else f"{secret.name}{INACTIVE}"
                    user = service.login_user(username)
                    stored[key] = self.entry(user, secret, by_user.get(username), host=host, port=port)
        for grant in plan.temporary:
            if grant.secret is None:  # logs in with IAM
                continue
            stored[grant.secret.name] = self.entry(
                grant.role, grant.secret, by_user.get(grant.role.name), host=host, port=port
            )
        if stored != before:
            self.write(stored)
        return self.stored_passwords()

    @staticmethod
    def entry(
        user: Role,
        secret: Secret,
        stored: Mapping[str, object] | None,
        *,
        host: str,
        port: int,
    ) -> dict[str, object]:
        """The local entry of `user`: the secret's fields, and its password unless it logs in with IAM."""
        entry: dict[str, object] = {**secret.fields, "username": user.name, "host": host, "port": port}
        if user.iam:
            return entry
        password = current_password(stored, user.password_rotation)
        return {
            **entry,
            "password": password or generate_password(secret.password_length),
            "rotation": user.password_rotation,
        }

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


def entries_by_user(stored: Mapping[str, object]) -> dict[str, Mapping[str, object]]:
    return {e["username"]: e for e in stored.values() if isinstance(e, dict) and "username" in e}


def current_password(entry: Mapping[str, object] | None, rotation: int) -> str | None:
    """The entry's password if it was generated for `rotation` (entries from before rotations: 0)."""
    if not entry or not entry.get("password") or entry.get("rotation", 0) != rotation:
        return None
    return str(entry["password"])


class SecretsManagerSecrets:
    """The secrets the Terraform stack created, read from AWS Secrets Manager."""

    def __init__(self, client: object, *, secret_ids: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.secret_ids = dict(secret_ids or {})
        """User name to the id (ARN) its secret is read by. @default - the secret's name."""

    def passwords(self, plan: Plan, **_: object) -> dict[str, str]:
        """The password of each secret's user; none for users that log in with IAM, and none for
        the inactive user of an alternating pair (no secret carries it)."""
        result, missing = {}, []
        for secret in plan.secrets:
            if secret.iam:
                continue
            # Listed by the user of its kind (an alternating pair's secret carries either one).
            secret_id = next((self.secret_ids[u] for u in secret.users if u in self.secret_ids), secret.name)
            try:
                value = self.client.get_secret_value(SecretId=secret_id)
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
