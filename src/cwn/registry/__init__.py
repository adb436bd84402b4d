"""The registry: organisations, their assets and contacts; JSON import/export with audit,
and a bulk loader for very large registries."""

from cwn.registry.exporter import export_registry
from cwn.registry.format import RegistryDocument, RegistryFormatError, parse_document, read_document
from cwn.registry.importer import ImportSummary, import_registry

__all__ = ["ImportSummary", "RegistryDocument", "RegistryFormatError", "export_registry",
           "import_registry", "parse_document", "read_document"]
