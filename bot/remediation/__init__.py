"""Mutating actions, registered by name with typed parameters (`@remediation`).

Playbooks name them; only an approved request may run one (the approvals flow). This build
registers the names and parameter models so playbooks are validated against them; the
actions themselves arrive with the approvals flow, and until then a playbook's remediation
buttons say the action is not available yet.
"""

from __future__ import annotations

from bot.remediation.registry import REMEDIATIONS, RemediationSpec

__all__ = ["REMEDIATIONS", "RemediationSpec"]
