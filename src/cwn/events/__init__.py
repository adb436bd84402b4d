"""The event contract: IntelMQ-compatible field catalogue, Arrow batches, fingerprints."""
