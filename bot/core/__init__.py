"""Core: settings, secrets' shapes, logs, metrics, errors, models, ids. Imports no other layer."""
