"""Shadowserver CSV reports: every report type, driven by the `reports.yaml` table."""

from cwn.ingest.shadowserver.filename import ReportFile, detect
from cwn.ingest.shadowserver.parser import parse
from cwn.ingest.shadowserver.schema import ReportSpec, ReportTable, load_table, update_schema

__all__ = [
    "ReportFile", "ReportSpec", "ReportTable", "detect", "load_table", "parse", "update_schema",
]
