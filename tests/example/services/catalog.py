"""ECS service `catalog`: products and prices, with the defaults for everything else."""

from servicedb import Service

SERVICE = Service(name="catalog")
