"""Test service `ledger`: read by checkout and reporting; small limits to test enforcement."""

from servicedb import Service

SERVICE = Service(name="ledger", connection_limit=2, statement_timeout_ms=300)
