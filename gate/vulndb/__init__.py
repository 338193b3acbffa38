"""An offline Trivy vulnerability DB (v2), built from OSV advisories, and its freshness check."""

from gate.vulndb.build import DbBuildError, DbBuildReport, build_db
from gate.vulndb.freshness import DbState, StaleDatabase, check_db

__all__ = ["DbBuildError", "DbBuildReport", "DbState", "StaleDatabase", "build_db", "check_db"]
