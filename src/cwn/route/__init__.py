"""Routing: events become cases, cases become decisions about who is told what, and when."""
