"""Archives on disk: raw input (content-addressed) and events (partitioned Parquet)."""
