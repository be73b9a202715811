"""Read-only checks, registered by name with typed parameters (`@check`).

A playbook names a check (`actuator.ratio`) and gives its parameters; the registry validates
them with the check's Pydantic model when the playbook loads, so a typo fails `icbot playbooks
validate` instead of an incident. Checks reach outside systems only through the narrow
protocols in `bot.playbooks.checks.probes`, so they can be run against the local stand-ins.
"""

from __future__ import annotations

from bot.playbooks.checks.registry import CHECKS, CheckSpec, check

__all__ = ["CHECKS", "CheckSpec", "check"]
