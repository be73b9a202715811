"""Block Kit action and callback ids, one enum per feature."""

from __future__ import annotations

from enum import StrEnum


class IcAction(StrEnum):
    # "Which incident?" buttons; the value carries the incident number and the command text.
    PICK_INCIDENT = "ic_pick_incident"
    # `/ic timeline`'s page buttons; value = {"incident": id, "page": n}
    SHOW_OLDER = "ic_timeline_older"
    SHOW_NEWER = "ic_timeline_newer"


class PromptAction(StrEnum):
    POST_UPDATE = "prompt_post_update"  # the status prompt's button; value = incident id


class ChecklistAction(StrEnum):
    TICK = "checklist_tick"  # block_id = "checklist:<reminder id>"; option value = item index


class RemediationAction(StrEnum):
    # A remediation button of a diagnosis; action_id "<this>:<index>", value = JSON.
    REQUEST = "remediation_request"


class ApprovalAction(StrEnum):
    APPROVE = "approval_approve"  # value = pending action id
    DENY = "approval_deny"
    # On a request that did not run because its target changed: value = pending action id.
    REQUEST_AGAIN = "approval_request_again"


class ShortcutId(StrEnum):
    """Callback ids of the app's shortcuts (manifest.yml `features.shortcuts`)."""

    ADD_TO_TIMELINE = "add_to_incident_timeline"  # a message shortcut: make it a key event


class ViewId(StrEnum):
    STATUS_UPDATE = "status_update_modal"  # private_metadata = incident id
    # private_metadata = {"channel": …, "ts": …} of the message; input block/action "incident"
    ADD_TO_TIMELINE = "add_to_timeline_modal"


class Metadata(StrEnum):
    """`metadata.event_type` of what the bot posts, so a retried post can be found again."""

    CARD = "icbot_incident_card"
    ENTRY = "icbot_timeline_entry"
    DIGEST = "icbot_thread_digest"
