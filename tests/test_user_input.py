"""Inside an authenticated request, every input error is a usage line: never a 500, never
"Something went wrong". Unicode digits, NUL and other control characters included."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.errors import UsageError
from commands import approvals, blocks, parsing
from tests.conftest import Bot

WENT_WRONG = "Something went wrong"
# superscript two, Arabic-Indic one and three, NKo one, double-struck two, circled one,
# Roman numeral twelve, fullwidth three: all `isdigit()` or `isnumeric()`, none ASCII
UNICODE_DIGITS = ["²", "\u0661", "\u0663", "\u07c1", "\U0001d7da", "①", "Ⅻ", "\uff13"]
CONTROLS = ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\ud800"]


async def _count(bot: Bot, table: str) -> int:
    return int((await bot.fetch(f"SELECT count(*) AS n FROM {table}"))[0]["n"])


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_rollback_revision_in_unicode_digits_is_a_usage_error(digit: str) -> None:
    with pytest.raises(UsageError):
        approvals.parse_rollback(f"payment-service {digit}")


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_rollback_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        deployment, revision, _, incident, _ = approvals.parse_rollback(text)
    except UsageError as exc:
        assert str(exc)
    else:
        assert deployment and (revision is None or revision >= 0)
        assert incident is None or incident >= 0


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_incident_numbers_are_ascii_digits_only(digit: str) -> None:
    with pytest.raises(UsageError):
        parsing.parse_ic(f"timeline INC-{digit}")


@pytest.mark.parametrize("control", CONTROLS)
def test_control_characters_in_command_text_are_a_usage_error(control: str) -> None:
    for text in (f"declare Pay{control}ments sev2", f"note a{control}b", f"action x{control}"):
        with pytest.raises(UsageError, match="control character"):
            parsing.parse_ic(text)
    with pytest.raises(UsageError, match="control character"):
        approvals.parse_rollback(f"payment{control}-service")


async def test_rollback_with_a_superscript_revision_gets_usage_not_a_500(bot: Bot) -> None:
    for digit in ("²", "\u0661"):
        status, body = await bot.post(
            bot.command_request(f"payment-service {digit}", command="/rollback")
        )
        assert status == 200 and "Usage: `/rollback" in body, digit


async def test_nul_in_a_title_or_note_gets_a_usage_line_and_changes_nothing(bot: Bot) -> None:
    status, body = await bot.command("declare Pay\x00ments down sev2")
    assert status == 200 and "control character" in body
    assert await _count(bot, "incidents") == 0
    await bot.command("declare Payments down sev2")
    for text in ("note a\x00b", "status Mitigating \x1b[2J", "resolve done\x00", "action x\x00"):
        status, body = await bot.command(text)
        assert status == 200 and "control character" in body, text
    assert await _count(bot, "timeline") == 1
    assert not any(WENT_WRONG in r for r in bot.replies_to("alice"))


async def test_nul_in_the_post_update_form_is_refused_in_the_form(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    incident = await bot.services.incidents.get(1)
    view = {**blocks.status_modal(incident), "id": "V1"}
    dana = bot.user("dana")
    submit = bot.requests.view_submission(
        view, {"status": "Mitigating", "impact": "a\x00b", "next": None},
        user_id=dana, user_name="dana",
    )  # fmt: skip
    status, body = await bot.post_signed(submit)
    assert status == 200 and '"response_action":"errors"' in body.replace(" ", "")
    assert "impact" in body and "control character" in body
    assert await _count(bot, "timeline") == 1
    assert not any(WENT_WRONG in r for r in bot.replies_to("dana"))


COMMANDS = [
    ("/ic", "declare"), ("/ic", "status"), ("/ic", "note"), ("/ic", "action"),
    ("/ic", "resolve"), ("/ic", "assign"), ("/ic", "handover"), ("/ic", "sev"),
    ("/ic", "timeline"), ("/ic", "list"), ("/ic", "page"), ("/ic", "postmortem"),
    ("/ic", ""), ("/rollback", ""), ("/diagnose", ""),
]  # fmt: skip
ODD = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            ["\x00", "\x1b", "²", "\u0661", "INC-1 ", "INC-\u0661 ", "<@U0BOB|bob> ", " "]
        ),
    ),
    max_size=30,
).map("".join)


@given(command=st.sampled_from(COMMANDS), text=ODD)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_any_text_for_any_command_gets_a_usage_line_or_success_never_an_error(
    bot: Bot, command: tuple[str, str], text: str
) -> None:
    if await _count(bot, "incidents WHERE resolved_at IS NULL") == 0:
        await bot.command("declare Payments failing sev2")
    slash, sub = command
    before = len(bot.replies_to("alice"))
    status, _ = await bot.post(bot.command_request(f"{sub} {text}".strip(), command=slash))
    await bot.settle()
    assert status == 200
    assert not any(WENT_WRONG in r for r in bot.replies_to("alice")[before:]), (slash, text)


async def test_a_captured_message_holding_a_nul_is_recorded_not_lost(bot: Bot) -> None:
    """No usage line can answer a message people post in the thread: what cannot be stored
    (a NUL, a lone surrogate) is recorded as U+FFFD and the rest as it was said."""
    from tests.test_scribe import say

    await bot.command("declare Payments failing sev2")
    await say(bot, "erin", "look \x00 here \ud800 now")
    rows = await bot.fetch("SELECT data FROM timeline WHERE kind = 'message'")
    assert [r["data"]["text"] for r in rows] == ["look \ufffd here \ufffd now"]
