"""Synthetic declarations for the benchmark: any number of services and one environment.

Service `service_0007` reads `service_0006` and `service_0003` (the one before it and the one at
half its number), and every fourth service creates an extension: about two reads per service, as
a shop of services that each read one or two others would have.
"""

from pathlib import Path

ENVIRONMENT = """\
[bench]
region = "eu-west-1"
account_id = "222222222222"
cluster_identifier = "bench-main"
endpoint = "bench-main.cluster-c9b8a7d6e5f4.eu-west-1.rds.amazonaws.com"
engine_version = "16.4"
master_secret_arn = "arn:aws:secretsmanager:eu-west-1:222222222222:secret:rds!cluster-bench-AbCdEf"
kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/5f0c1e2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f"
state_bucket = "example-bench-terraform-state"

[bench.tags]
environment = "bench"
managed-by = "servicedb"
"""

STACK = "bench-database-access"


def service_name(number: int) -> str:
    return f"service_{number:04d}"


def service_file(number: int) -> str:
    reads = sorted({other for other in (number - 1, number // 2) if 1 <= other < number})
    fields = [f"name={service_name(number)!r}"]
    if reads:
        fields.append(f"reads=({''.join(f'Reads(service={service_name(other)!r}), ' for other in reads).strip()})")
    if number % 4 == 0:
        fields.append('extensions=("pgcrypto",)')
    return (
        f'"""Synthetic ECS service `{service_name(number)}` for the benchmark."""\n\n'
        "from servicedb import Reads, Service\n\n"
        f"SERVICE = Service({', '.join(fields)})\n"
    )


def write_declarations(directory: Path, count: int) -> tuple[Path, Path]:
    """`services/` with `count` services and `environments.toml` with `[bench]`, in `directory`."""
    services = directory / "services"
    services.mkdir(parents=True)
    for number in range(1, count + 1):
        (services / f"{service_name(number)}.py").write_text(service_file(number))
    environments = directory / "environments.toml"
    environments.write_text(ENVIRONMENT)
    return services, environments
