"""The one error type of public-data imports and lookups."""

from __future__ import annotations


class PublicDataError(ValueError):
    """An input file that cannot be used at all; the CLI prints it as one line."""
