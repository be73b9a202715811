"""What Slack checks in a message's or a view's Block Kit, for the Slack stand-in.

slack_sdk's Block Kit models (`slack_sdk.models.blocks`, `slack_sdk.models.views`) parse the
payload and run their validators (block_id and action_id ≤ 255, section text ≤ 3,000, ≤ 10
fields, header ≤ 150, ≤ 25 actions elements, ≤ 10 context elements, button text ≤ 75 and value
≤ 2,000, option text ≤ 75 and value ≤ 150, view title/submit/close ≤ 24, …). On top come the
documented limits the models do not check: ≤ 50 blocks in a message (100 in a view), a field's
text ≤ 2,000, ≤ 10 checkbox or radio options, a text object's text not empty, a block type
Slack knows, no property Slack does not know (what the models' round trip drops), block_ids
unique in the payload and action_ids unique in their block.

Each problem is reported as Slack reports it: a message ending in the JSON pointer of the part
(`must be at most 3000 characters [json-pointer:/blocks/3/text/text]`).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_FIELD_TEXT = 2000
MAX_CHOICE_OPTIONS = 10  # checkboxes and radio buttons
MAX_TEXT_OBJECT = 3000  # any text object (section text has the same bound)

__all__ = ["MAX_MESSAGE_BLOCKS", "MAX_VIEW_BLOCKS", "message_problems", "view_problems"]


def _at(pointer: str, why: str) -> str:
    return f"{why} [json-pointer:{pointer}]"


def _model_problem(block: dict[str, Any], pointer: str) -> str | None:
    """slack_sdk's own validation of one block (parsed, then serialised: every validator runs),
    and no property the models do not know (they drop it; Slack refuses it)."""
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return _at(f"{pointer}/type", f"unknown block type {block.get('type')!r}")
        kept = parsed.to_dict()
    except SlackObjectFormationError as exc:
        return _at(pointer, str(exc))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _at(pointer, f"malformed block ({type(exc).__name__}: {exc})")
    return _unknown_property(block, kept, pointer)


def _unknown_property(given: Any, kept: Any, pointer: str) -> str | None:
    """The first property of `given` that slack_sdk's round trip dropped (not an empty one)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                if value is None or value == [] or value == {} or value == "":
                    continue
                return _at(f"{pointer}/{key}", f"invalid additional property: {key}")
            found = _unknown_property(value, kept[key], f"{pointer}/{key}")
            if found is not None:
                return found
    elif isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        for i, (a, b) in enumerate(zip(given, kept, strict=True)):
            found = _unknown_property(a, b, f"{pointer}/{i}")
            if found is not None:
                return found
    return None


def _walk_texts(node: Any, pointer: str, problems: list[str]) -> None:
    """Every text object holds 1 to 3,000 characters."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
            text = node.get("text")
            if not isinstance(text, str) or not text:
                problems.append(_at(f"{pointer}/text", "must be a non-empty string"))
            elif len(text) > MAX_TEXT_OBJECT:
                problems.append(
                    _at(f"{pointer}/text", f"must be at most {MAX_TEXT_OBJECT} characters")
                )
        for key, value in node.items():
            _walk_texts(value, f"{pointer}/{key}", problems)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk_texts(value, f"{pointer}/{i}", problems)


def _limit_problems(block: dict[str, Any], pointer: str) -> list[str]:
    problems: list[str] = []
    fields = block.get("fields")
    if isinstance(fields, list):
        for i, f in enumerate(fields):
            text = f.get("text") if isinstance(f, dict) else None
            if isinstance(text, str) and len(text) > MAX_FIELD_TEXT:
                problems.append(
                    _at(
                        f"{pointer}/fields/{i}/text", f"must be at most {MAX_FIELD_TEXT} characters"
                    )
                )
    elements = block.get("elements")
    if block.get("type") in ("actions", "input"):
        found = elements if isinstance(elements, list) else [block.get("element")]
        seen: set[str] = set()
        for i, element in enumerate(found):
            if not isinstance(element, dict):
                continue
            where = (
                f"{pointer}/elements/{i}" if isinstance(elements, list) else f"{pointer}/element"
            )
            if element.get("type") in ("checkboxes", "radio_buttons"):
                options = element.get("options")
                if not isinstance(options, list) or not 1 <= len(options) <= MAX_CHOICE_OPTIONS:
                    problems.append(
                        _at(f"{where}/options", f"must hold 1-{MAX_CHOICE_OPTIONS} options")
                    )
            action_id = element.get("action_id")
            if isinstance(action_id, str):
                if action_id in seen:
                    problems.append(_at(f"{where}/action_id", "action_id must be unique"))
                seen.add(action_id)
    _walk_texts(block, pointer, problems)
    return problems


def blocks_problems(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[str]:
    """What Slack would refuse in a list of blocks (empty: nothing)."""
    if not isinstance(blocks, list):
        return [_at(pointer, "must be an array")]
    if len(blocks) > limit:
        return [_at(pointer, f"must hold at most {limit} blocks, not {len(blocks)}")]
    problems: list[str] = []
    block_ids: set[str] = set()
    for n, block in enumerate(blocks):
        where = f"{pointer}/{n}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(_at(where, "must be an object with a type"))
            continue
        found = _model_problem(block, where)
        if found is not None:
            problems.append(found)
        problems += _limit_problems(block, where)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                problems.append(_at(f"{where}/block_id", f"duplicate block_id {block_id!r}"))
            block_ids.add(block_id)
    return problems


def message_problems(blocks: Any) -> list[str]:
    """A message's blocks (chat.postMessage, chat.update, chat.postEphemeral, response_url)."""
    return blocks_problems(blocks, limit=MAX_MESSAGE_BLOCKS)


def view_problems(view: dict[str, Any]) -> list[str]:
    """A modal: its blocks (each problem with its pointer), then slack_sdk's View validators
    (title, submit, close, private_metadata, callback_id)."""
    blocks = view.get("blocks") or []
    problems = blocks_problems(blocks, limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    try:
        View(**view).to_dict()
    except SlackObjectFormationError as exc:
        problems.append(_at("/view", str(exc)))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        problems.append(_at("/view", f"malformed view ({type(exc).__name__}: {exc})"))
    return problems
