"""Local development and test infrastructure: Kafka, PostgreSQL and the ResolutionFlow services."""

from rf_devstack.infra import Infra, obtain_infra
from rf_devstack.kafka import LocalKafka
from rf_devstack.postgres import LocalPostgres, ensure_databases
from rf_devstack.prereqs import MissingPrerequisiteError, check_prerequisites

__all__ = [
    "Infra",
    "LocalKafka",
    "LocalPostgres",
    "MissingPrerequisiteError",
    "check_prerequisites",
    "ensure_databases",
    "obtain_infra",
]
