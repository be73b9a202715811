"""Block Kit action and callback ids, one enum per feature."""

from __future__ import annotations

from enum import StrEnum


class IcAction(StrEnum):
    # "Which incident?" buttons; the value carries the incident number and the command text.
    PICK_INCIDENT = "ic_pick_incident"


class Metadata(StrEnum):
    """`metadata.event_type` of what the bot posts, so a retried post can be found again."""

    CARD = "icbot_incident_card"
    ENTRY = "icbot_timeline_entry"
