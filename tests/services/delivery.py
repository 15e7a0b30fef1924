"""Test service `delivery`: reads checkout only, so ledger and inventory stay out of its reach."""

from servicedb import Reads, Service

SERVICE = Service(name="delivery", reads=(Reads(service="checkout"),))
