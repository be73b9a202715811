"""The guard's rules: card numbers and secrets are found and redacted; everything else is left."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.guard import NETWORKS, FindingKind, card_network, luhn_valid, redact, scan

# One prefix and length per network (and the extra ranges), as issuers print them.
NETWORK_SAMPLES = {
    "Visa": [("4", 16), ("4", 13), ("4", 19)],
    "Mastercard": [("51", 16), ("55", 16), ("2221", 16), ("2720", 16)],
    "American Express": [("34", 15), ("37", 15)],
    "Discover": [("6011", 16), ("644", 16), ("65", 19), ("622126", 16)],
    "JCB": [("3528", 16), ("3589", 19)],
    "Diners Club": [("300", 14), ("36", 14), ("38", 16)],
    "UnionPay": [("62", 16), ("62", 19)],
    "Maestro": [("6759", 16), ("5018", 13), ("6304", 19)],
}


def complete_luhn(partial: str) -> str:
    """`partial` plus the check digit that makes it pass Luhn."""
    for d in "0123456789":
        if luhn_valid(partial + d):
            return partial + d
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    network = draw(st.sampled_from(sorted(NETWORK_SAMPLES)))
    prefix, length = draw(st.sampled_from(NETWORK_SAMPLES[network]))
    body = draw(st.text("0123456789", min_size=length - 1 - len(prefix),
                        max_size=length - 1 - len(prefix)))  # fmt: skip
    return complete_luhn(prefix + body)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """The digits as people write them: together, in 4s, 4-6-5, or random groups."""
    style = draw(st.sampled_from(["together", "fours", "amex", "random"]))
    sep = draw(st.sampled_from([" ", "-"]))
    if style == "together":
        return digits
    if style == "fours":
        return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    if style == "amex":
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=6)))
    edges = [0, *cuts, len(digits)]
    return sep.join(digits[a:b] for a, b in itertools.pairwise(edges))


# Words around a number in chatter; never digits or letters glued to the number itself.
chatter = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).map(
    lambda s: f"{s} " if s else s
)


@pytest.mark.parametrize(
    ("digits", "network"),
    [
        ("4111111111111111", "Visa"),
        ("5555555555554444", "Mastercard"),
        ("2223003122003222", "Mastercard"),
        ("378282246310005", "American Express"),
        ("6011111111111117", "Discover"),
        ("3530111333300000", "JCB"),
        ("30569309025904", "Diners Club"),
        ("6200000000000005", "UnionPay"),
        ("6759649826438453", "Maestro"),
    ],
)
def test_test_cards_of_every_network_are_recognised(digits: str, network: str) -> None:
    found = card_network(digits)
    assert found is not None and found.name in {network, "Maestro", "Discover", "UnionPay"}
    assert redact(f"card {digits} declined").text == (
        f"card [redacted: card number ending {digits[-4:]}] declined"
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), before=chatter, after=chatter)
def test_a_card_number_in_any_grouping_never_survives_redaction(
    data: st.DataObject, before: str, after: str
) -> None:
    digits = data.draw(card_numbers())
    written = data.draw(grouped(digits))
    text = f"{before}{written} {after}"
    guarded = redact(text)
    assert digits not in re.sub(r"[ \-]", "", guarded.text)
    assert guarded.has_card
    # (a number written right after it may join the window, so the last four are not checked)
    assert "[redacted: card number ending " in guarded.text
    assert redact(guarded.text).text == guarded.text  # redacting twice changes nothing more


@settings(max_examples=200, deadline=None)
@given(card=card_numbers())
def test_a_number_that_fails_luhn_is_left_alone(card: str) -> None:
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not luhn_valid(wrong)
    assert redact(f"order {wrong} failed").text == f"order {wrong} failed"


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123456 stuck",  # Luhn-valid? no network starts with 1
        "ORD-2026-000123 retried 3 times",
        "at 2026-12-07 18:25:15 UTC",
        "epoch 1733590000123 ms",
        "call +44 20 7946 0958 or +1-800-555-0199",
        "IBAN DE89 3704 0044 0532 0130 00",
        "IBAN GB82 WEST 1234 5698 7654 32",
        "trace 123e4567-e89b-12d3-a456-426614174000",
        "uuid 41111111-1111-1111-1111-111111111111",
        "deploy payment-service 1.4.2 to revision 3",
        "p99 4111ms, 5500 errors, 3782 retries",
        "the token expired at 18:02",
        "password reset flow is down",
        "kubectl rollout undo deployment/payment-service --to-revision=2",
        "commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "[redacted: card number ending 1111]",
    ],
)
def test_ordinary_incident_text_is_left_alone(text: str) -> None:
    assert scan(text) == []
    assert redact(text).text == text


@pytest.mark.parametrize(
    ("text", "label", "kind"),
    [
        ("try with xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", "Slack bot token", "slack_token"),
        ("xoxp-1234-5678-90ab-cdef1234", "Slack user token", "slack_token"),
        (
            "app token xapp-1-A0123456789-1234567890123-abcdef0123456789",
            "Slack app-level token",
            "slack_token",
        ),
        ("rotating xoxe.xoxb-1-MS0yLTEyMzQ1Njc4", "Slack bot token", "slack_token"),
        ("refresh xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0", "Slack refresh token", "slack_token"),
        (
            "post to https://hooks.slack.com/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX now",
            "Slack webhook URL",
            "slack_webhook",
        ),
        ("PagerDuty API token: y_NbAkKc66ryYTWUXYEu", "PagerDuty API token", "pagerduty_token"),
        ("pd_token=u+AbCdEfGhIjKlMnOpQr", "PagerDuty API token", "pagerduty_token"),
        ("AKIAIOSFODNN7EXAMPLE is the key id", "AWS access key id", "aws_access_key"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS secret access key",
            "aws_secret_key",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
            "private key",
            "private_key",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC (pasted half)",
            "private key",
            "private_key",
        ),
        (
            "bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
            "JSON web token",
            "jwt",
        ),
        ("VAULT_TOKEN hvs.CAESIJlWh7h2Aq1ZtrX9Z7Vx8Qk8fGhJ", "Vault token", "vault_token"),
        ("old token s.Kx0Ty5BfVn3MzQa8Lp2Wr7Dc", "Vault token", "vault_token"),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "GitHub token", "github_token"),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "GitHub token",
            "github_token",
        ),
        ("db password=hunter2!x", "password", "credential"),
        ('{"secret": "s3cr3t-value"}', "secret", "credential"),
        ("curl ...?token=abc123def456", "token", "credential"),
    ],
)
def test_each_kind_of_secret_is_redacted_with_its_name(text: str, label: str, kind: str) -> None:
    guarded = redact(text)
    assert f"[redacted: {label}]" in guarded.text
    assert guarded.kinds == [FindingKind(kind)]
    assert not guarded.has_card
    again = redact(guarded.text)
    assert again.text == guarded.text and not again.findings


def test_secret_values_do_not_survive_anywhere_in_the_text() -> None:
    text = (
        "card 4111-1111-1111-1111, token xoxb-1-2-abcdefabcdef and AKIAIOSFODNN7EXAMPLE"
        " and password=correct-horse"
    )
    guarded = redact(text)
    for secret in ("4111-1111-1111-1111", "xoxb-1-2-abcdefabcdef", "AKIAIOSFODNN7EXAMPLE",
                   "correct-horse"):  # fmt: skip
        assert secret not in guarded.text
    assert guarded.summary() == (
        "a card number, a Slack bot token, an AWS access key id and a password"
    )


def test_two_cards_side_by_side_are_both_redacted() -> None:
    guarded = redact("4111 1111 1111 1111 5555 5555 5555 4444")
    assert guarded.text == (
        "[redacted: card number ending 1111] [redacted: card number ending 4444]"
    )


def test_a_long_run_of_numbers_is_scanned_in_linear_time() -> None:
    # 20,000 groups of digits: the window search is bounded by 19 digits, so this is quick.
    text = " ".join(["1"] * 20_000)
    assert redact(text).text == text


def test_every_network_has_a_sample() -> None:
    assert {n.name for n in NETWORKS} == set(NETWORK_SAMPLES)
