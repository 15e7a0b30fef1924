"""INC-4711: jdoe reads orders in prod while the failed release of 2 November is investigated.

Expired: it creates nothing now, and the deploy after 13:00 removed what it had created. Git keeps
the record of who had which access, why and when; the file may be deleted.
"""

from datetime import UTC, datetime

from servicedb import TemporaryAccess

ACCESS = TemporaryAccess(
    person="jdoe",
    principal_arn="arn:aws:iam::222222222222:role/oncall-jdoe",
    environment="prod",
    service="orders",
    ticket="INC-4711",
    valid_from=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    valid_until=datetime(2026, 11, 2, 13, 0, tzinfo=UTC),
)
