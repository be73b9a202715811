"""The /ic grammar: any text gives a command or a usage error, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import UsageError
from commands import parsing
from commands.parsing import (
    Assign,
    Declare,
    Handover,
    ListIncidents,
    Note,
    Resolve,
    SetSeverity,
    Status,
    Timeline,
)

WORDS = st.sampled_from(
    ["declare", "assign", "handover", "sev", "status", "note", "resolve", "timeline", "list", "help",
     "INC-1", "inc-22", "sev1", "SEV4", "sev9", "<@U0123ABC|dana>", "<@W0999XYZ>", "@dana", "scribe",
     "ic", "comms", "", " ", "\t", "ü", "<@", ">", "|", "INC-", "INC-99999999999"]
)  # fmt: skip


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        parsing.parse_ic(text)
    except UsageError as exc:
        assert str(exc)


@given(st.lists(WORDS, max_size=8).map(" ".join))
@settings(max_examples=500, deadline=None)
def test_any_sequence_of_command_words_parses_or_raises_usage_error(text: str) -> None:
    try:
        result = parsing.parse_ic(text)
    except UsageError as exc:
        assert "Usage" in str(exc) or str(exc)
        return
    if isinstance(result, Assign | Handover):
        assert result.user.startswith(("U", "W"))
    if isinstance(result, Handover) and result.role is not None:
        assert "<" not in result.role and "@" not in result.role


# Any text without control characters (those are refused: tests/test_user_input.py).
@given(
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=100).filter(
        lambda t: t.strip()
    )
)
def test_status_text_is_kept_as_typed(body: str) -> None:
    result = parsing.parse_ic(f"status INC-3 {body}")
    assert isinstance(result, Status)
    assert result.incident == 3
    assert result.text == body.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("declare Payments failing sev2", Declare("Payments failing", "sev2")),
        ("declare Payments failing", Declare("Payments failing", None)),
        ("declare  Sev-1 outage SEV-1", Declare("Sev-1 outage", "sev1")),
        ("assign <@U0DANA001|dana> scribe", Assign(None, "U0DANA001", "scribe")),
        ("assign INC-4 comms <@U0ERIN002>", Assign(4, "U0ERIN002", "comms lead")),
        ("assign <@U0ERIN003|erin> IC", Assign(None, "U0ERIN003", "incident commander")),
        ("sev INC-2 SEV1", SetSeverity(2, "sev1")),
        ("status Mitigating:  rolled back", Status(None, "Mitigating:  rolled back")),
        ("note inc-7 DB at 90% CPU", Note(7, "DB at 90% CPU")),
        ("resolve", Resolve(None, None)),
        ("resolve INC-5 bad deploy", Resolve(5, "bad deploy")),
        ("timeline INC-5", Timeline(5)),
        ("timeline INC-5 --page 2", Timeline(5, page=2)),
        ("timeline --page=3", Timeline(None, page=3)),
        ("update INC-1 still looking", Status(1, "still looking")),
        ("list", ListIncidents()),
        ("list --all", ListIncidents(history=True, days=30)),
        ("ls ALL", ListIncidents(history=True, days=30)),
        ("list --all --days 7", ListIncidents(history=True, days=7)),
        ("list --days=365 --all", ListIncidents(history=True, days=365)),
        ("list --days 1", ListIncidents(history=True, days=1)),  # --days implies --all
        ("list \u2014all", ListIncidents(history=True, days=30)),  # smart dash from macOS
        ("handover <@U0DANA001|dana>", Handover(None, "U0DANA001", None)),
        ("handover INC-3 <@U0DANA001> ic", Handover(3, "U0DANA001", "incident commander")),
        ("handover comms <@U0ERIN002|erin>", Handover(None, "U0ERIN002", "comms lead")),
        ("handoff <@U0ERIN002> Security_Lead", Handover(None, "U0ERIN002", "security lead")),
    ],
)
def test_grammar_examples(text: str, expected: object) -> None:
    assert parsing.parse_ic(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frobnicate", "not a command I know"),
        ("declare", "title"),
        ("declare sev2", "title"),
        ("sev sev5", "Usage"),
        ("sev", "Usage"),
        ("assign dana scribe", "Usage"),
        ("assign @dana scribe", "Mention the person"),
        ("assign <@U0AAA0001> <@U0BBB0002>", "not a role name"),
        ("handover", "Say who takes over"),
        ("timeline --page 0", "`--page` takes a page number"),
        ("timeline INC-2 --page ²", "`--page` takes a page number"),
        ("timeline INC-2 later", "Usage: `/ic timeline"),
        ("handover INC-2", "Say who takes over"),
        ("handover <@U0AAA0001> ic now", "Usage"),
        ("handover dana ic", "Usage: `/ic handover \\[INC-n\\] @user \\[role\\]`"),
        ("handover @dana", "Mention the person"),
        ("handover <@U0AAA0001> <@U0BBB0002>", "not a role name"),
        ("handover <@U0AAA0001> s!", "not a role name"),
        ("status INC-3", "Say what the status is"),
        ("note", "Say what to note"),
        ("list everything", "Usage"),
        ("list --all --days 0", "from 1 to 365"),
        ("list --all --days 366", "from 1 to 365"),
        ("list --all --days", "from 1 to 365"),
        ("list --all --days seven", "from 1 to 365"),
        ("list --days=-3", "from 1 to 365"),
        ("list --days 7 --days 8", "Usage"),
        ("list --all=yes", "Usage"),
        ("list INC-3", "Usage"),
        ("x" * 4001, "keep it under 4000"),
    ],
)
def test_bad_input_gets_a_usage_message(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parsing.parse_ic(text)


LIST_WORDS = st.sampled_from(
    ["--all", "all", "ALL", "--days", "--days=", "--days=30", "0", "1", "30", "365", "366",
     "-1", "1e3", "١٢", "--all=1", "INC-2", "", "—all", "--", "days"]
)  # fmt: skip


@given(st.lists(LIST_WORDS, max_size=6).map(" ".join))
@settings(max_examples=400, deadline=None)
def test_list_arguments_give_a_window_of_1_to_365_days_or_the_list_usage(args: str) -> None:
    try:
        result = parsing.parse_ic(f"list {args}")
    except UsageError as exc:
        assert parsing.USAGE["list"] in str(exc)
        return
    assert isinstance(result, ListIncidents)
    assert 1 <= result.days <= 365
    assert result.history == bool(args.split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("sev 1", SetSeverity(None, "sev1")), ("sev INC-2 3", SetSeverity(2, "sev3"))],
)
def test_sev_accepts_a_bare_severity_number(text: str, expected: SetSeverity) -> None:
    assert parsing.parse_ic(text) == expected


def test_a_bare_number_ending_a_title_is_not_a_severity() -> None:
    assert parsing.parse_ic("declare Checkout down for tier 2") == Declare(
        "Checkout down for tier 2", None
    )


def test_sev_refuses_numbers_outside_the_policy() -> None:
    with pytest.raises(UsageError, match="Usage"):
        parsing.parse_ic("sev 5")
