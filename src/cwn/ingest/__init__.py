"""Collect and parse: feed catalogue, parsers, the raw archive and the ingest pipeline."""
