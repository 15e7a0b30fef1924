"""Test service `checkout`: reads ledger and inventory; read by delivery."""

from servicedb import Reads, Service

SERVICE = Service(name="checkout", reads=(Reads(service="ledger"), Reads(service="inventory")))
