"""Templates, advice and output formats (NL/EN)."""
