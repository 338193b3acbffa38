"""Formatters of a `Verdict`: a terminal table, JSON (schema `airlock-gate/1`), SARIF 2.1.0."""

from gate.report.json_report import to_json
from gate.report.sarif import to_sarif
from gate.report.table import to_table

FORMATTERS = {"table": to_table, "json": to_json, "sarif": to_sarif}

__all__ = ["FORMATTERS", "to_json", "to_sarif", "to_table"]
