"""Playbooks: the catalogue, diagnose, and the check and remediation registries."""
