"""Delivery: the outbox and event publishing loops (worker base)."""
