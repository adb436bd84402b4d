"""Delivery: the outbox state machine and the channels that carry messages out."""
