"""Feedback from the outside world: bounces (and later acknowledgements and fixes)."""
