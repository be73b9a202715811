"""How numbers, bands and Slack markup read: in the diagnosis, the approval card and the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.mentions import mentioned, with_names
from bot.core.numfmt import measured, plural
from bot.playbooks.catalogue import Threshold
from bot.runtime.terminal_text import terminal_text
from commands.blocks import diagnosis_blocks


@pytest.mark.parametrize(
    ("value", "shown"),
    [(4.49969, "4.5"), (3.2000000000000006, "3.2"), (1.0049, "1"), (127.0, "127"), (42.46, "42.5"), (1234.5, "1234"), (0.0312, "0.031"),
     (0.5, "0.5"), (0.0, "0")],
)  # fmt: skip
def test_a_measured_value_is_shown_to_at_most_three_significant_figures(
    value: float, shown: str
) -> None:
    assert measured(value) == shown


def test_a_finding_shows_its_value_as_its_detail_does() -> None:
    finding = {
        "title": "SAGA compensation rate",
        "value": 4.49969,
        "unit": "%",
        "band": "critical",
        "threshold": "normal <0.1%, warning 0.1-1%, critical >1%",
        "detail": "1299 of 28875 (4.5%)",
    }
    data = {"playbook": "saga", "title": "SAGA", "verdict": "CRITICAL", "worst": "critical",
            "findings": [finding]}  # fmt: skip
    text = str(diagnosis_blocks(data)[1]["text"]["text"])
    assert "4.5%" in text and "4.4996" not in text


def test_a_warning_band_of_one_value_is_said_once() -> None:
    assert Threshold(warning=0.5, critical=0.5).describe() == (
        "normal <0.5, warning at 0.5, critical >0.5"
    )
    assert Threshold(warning=90, critical=90, direction="below", unit="%").describe() == (
        "normal >90%, warning at 90%, critical <90%"
    )
    assert Threshold(warning=1, critical=2).describe() == "normal <1, warning 1-2, critical >2"


def test_counted_words_take_the_plural_only_when_more_than_one() -> None:
    assert plural(1, "approval") == "1 approval"
    assert plural(2, "approval") == "2 approvals"
    assert plural(0, "entry", "entries") == "0 entries"


def _text(mrkdwn: str, *, styled: bool = False) -> str:
    names = {"U0000000001": "dana"}
    return terminal_text(
        mrkdwn, user_name=names.get, channel_name=lambda c: "incidents", styled=styled
    )


def test_mrkdwn_in_the_terminal_loses_its_marks_and_keeps_its_words() -> None:
    assert _text("*INC-1* is `critical` _(normal <0.1%)_ ~old~") == (
        "INC-1 is critical (normal <0.1%) old"
    )
    assert _text("a `rollback_deployment` and snake_case_words stay") == (
        "a rollback_deployment and snake_case_words stay"
    )
    assert _text("&lt;tag&gt; &amp; x") == "<tag> & x"


def test_mentions_channels_and_links_read_as_names_and_urls() -> None:
    assert (
        _text("<@U0000000001> and <@U0000000009|erin> in <#C1>") == "@dana and @erin in #incidents"
    )
    assert _text("<https://x.example/a|the page> · <https://x.example/b>") == (
        "the page (https://x.example/a) · https://x.example/b"
    )
    assert _text("<!here> <!subteam^S1|@oncall> <mailto:a@b.example|a@b.example>") == (
        "@here @oncall a@b.example"
    )


def test_a_code_block_is_indented_and_a_quote_is_a_bar() -> None:
    assert _text("Draft:\n```# Title\n*not bold*```") == "Draft:\n    # Title\n    *not bold*"
    assert _text("> from revision 3\n> to revision 2") == "│ from revision 3\n│ to revision 2"


def test_on_a_terminal_bold_italic_and_code_are_styled() -> None:
    assert _text("*a* _b_ `c`", styled=True) == (
        "\x1b[1ma\x1b[22m \x1b[3mb\x1b[23m \x1b[2mc\x1b[22m"
    )


# ---------------------------------------------------------------------- names after the shell


def _icbot(args: list[str], stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        env={**os.environ, "USER": "sam", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_postmortem_after_the_shell_names_its_people_and_they_keep_their_ids(
    dsn: str, data_home: Path
) -> None:
    """The shell keeps its workspace's people (`slack-users.json`, a users.list answer) in the
    data directory: the next shell gives them the same ids, and `icbot postmortem` names them."""
    env = {"DATABASE_URL": dsn, "XDG_DATA_HOME": str(data_home), "SLACK_BOT_TOKEN": ""}
    first = _icbot(["shell"], "/as @dana\n/ic declare Payments failing sev2\n", env)
    assert first.returncode == 0, first.stderr
    # Another run meets @erin first: @dana keeps her id, so INC-1's commander is still her.
    second = _icbot(["shell"], "/as @erin\n/ic timeline INC-1\n", env)
    assert second.returncode == 0, second.stderr
    assert "@dana declared INC-1" in second.stdout, second.stdout
    assert "Payments failing (1 entry)" in second.stdout  # not "1 entries"
    printed = _icbot(["postmortem", "INC-1"], "", env)
    assert printed.returncode == 0, printed.stderr
    assert "<@U" not in printed.stdout, printed.stdout
    assert "Declared by @dana as SEV2" in printed.stdout, printed.stdout
    assert (data_home / "icbot" / "slack-users.json").is_file()


def test_a_mention_of_someone_unknown_keeps_its_label_or_its_id() -> None:
    text = "<@U0000000001> asked <@U0000000002|erin> and <@U0000000003>"
    assert mentioned(text) == {"U0000000001", "U0000000002", "U0000000003"}
    assert with_names(text, {"U0000000001": "Dana"}) == "@Dana asked @erin and @U0000000003"


def test_diagnose_in_the_plain_shell_says_the_sandbox_has_a_platform_to_look_at(
    dsn: str, data_home: Path
) -> None:
    env = {"DATABASE_URL": dsn, "XDG_DATA_HOME": str(data_home), "SLACK_BOT_TOKEN": ""}
    result = _icbot(["shell"], "/ic declare Payments failing sev2\n/diagnose saga\n", env)
    assert result.returncode == 0, result.stderr
    diagnosed = result.stdout[result.stdout.index("@sam> /diagnose saga") :]
    assert "(no platform runs beside this shell, so the checks reach nothing:" in diagnosed
    assert "`icbot shell --sandbox`" not in diagnosed and "icbot shell --sandbox" in diagnosed
