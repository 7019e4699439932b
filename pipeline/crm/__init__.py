"""CRM: import CSV exports (accounts, orders, activities, contacts, support) with column presets."""

from pipeline.crm.importer import ImportReport, import_csv
from pipeline.crm.presets import parse_amount, parse_date, parse_map, read_rows

__all__ = ["ImportReport", "import_csv", "parse_amount", "parse_date", "parse_map", "read_rows"]
