"""Test service `inventory`: read by checkout."""

from servicedb import Service

SERVICE = Service(name="inventory")
