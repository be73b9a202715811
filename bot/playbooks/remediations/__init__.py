"""Mutating actions, registered by name with typed parameters (`@remediation`).

Playbooks name them; only an approved request may run one (the approvals flow). This build
registers each name with its parameter model (so playbooks are validated against them) and
its preview and run (`bot/playbooks/remediations/actions.py`).
"""

from __future__ import annotations

import bot.playbooks.remediations.actions  # noqa: F401  (registers the bundled remediations)
from bot.playbooks.remediations.registry import REMEDIATIONS, RemediationSpec, remediation

__all__ = ["REMEDIATIONS", "RemediationSpec", "remediation"]
