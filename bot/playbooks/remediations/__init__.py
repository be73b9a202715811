"""Mutating actions, registered by name with typed parameters (`@remediation`).

Playbooks name them; only an approved request may run one (the approvals flow). This build
registers each name with its parameter model (so playbooks are validated against them) and
its preview and run (`bot/playbooks/remediations/actions.py`).
"""

from __future__ import annotations

# Registers the bundled remediations, and statuspage_update (issue 21).
import bot.playbooks.remediations.actions
import bot.playbooks.remediations.statuspage  # noqa: F401
from bot.playbooks.remediations.registry import REMEDIATIONS, RemediationSpec, remediation

__all__ = ["REMEDIATIONS", "RemediationSpec", "remediation"]
