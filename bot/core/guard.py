"""The guard: card numbers and secrets found in text, and the text with them redacted.

Pure functions, no I/O. Everything that enters the record (timeline, digest, post-mortem,
events, exports) passes through `redact` first; what it finds is reported so the author can
be told and the fact recorded, without the finding itself ever being kept.

- **Card numbers (PANs)**: 13-19 digits, written together or in groups separated by single
  spaces or dashes, that pass the Luhn check and carry a card network's prefix and length
  (`NETWORKS`). Stored as ``[redacted: card number ending 1111]``: the last four only, less
  than the first-6/last-4 PCI DSS allows for display.
- **Secrets** (`SECRET_RULES`): Slack tokens and webhook URLs, labelled PagerDuty API tokens,
  AWS access key ids and labelled secret keys, PEM private-key blocks, JWTs, Vault tokens,
  GitHub tokens and ``password=`` / ``secret=`` / ``token=`` style assignments. Stored as
  ``[redacted: Slack bot token]``.

No maintained library fits: detect-secrets (Yelp) scans files line by line for commits, reports
no positions, lacks several of these token shapes and pulls in `requests`; Presidio needs a
spaCy model download. The rules here follow the shapes those tools and gitleaks document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum


class FindingKind(StrEnum):
    """What was found; also the `kind` label of `icbot_redactions_total`."""

    CARD_NUMBER = "card_number"
    SLACK_TOKEN = "slack_token"
    SLACK_WEBHOOK = "slack_webhook"
    PAGERDUTY_TOKEN = "pagerduty_token"
    AWS_ACCESS_KEY = "aws_access_key"
    AWS_SECRET_KEY = "aws_secret_key"
    PRIVATE_KEY = "private_key"
    JWT = "jwt"
    VAULT_TOKEN = "vault_token"
    GITHUB_TOKEN = "github_token"
    CREDENTIAL = "credential"

    @property
    def is_card(self) -> bool:
        return self is FindingKind.CARD_NUMBER


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    label: str  # what people read: "card number ending 1111", "Slack bot token"
    start: int
    end: int

    @property
    def replacement(self) -> str:
        return f"[redacted: {self.label}]"


@dataclass(frozen=True)
class Guarded:
    """A text after the guard: `text` is safe to store; `findings` say what was taken out."""

    text: str
    findings: tuple[Finding, ...]

    @property
    def changed(self) -> bool:
        return bool(self.findings)

    @property
    def kinds(self) -> list[FindingKind]:
        """Each kind found, once, in order of first appearance."""
        return list(dict.fromkeys(f.kind for f in self.findings))

    @property
    def has_card(self) -> bool:
        return any(f.kind.is_card for f in self.findings)

    def summary(self) -> str:
        """`a card number and a Slack bot token`: what was found, without any of it."""
        labels = list(
            dict.fromkeys("a card number" if f.kind.is_card else _a(f.label) for f in self.findings)
        )
        if len(labels) <= 1:
            return "".join(labels)
        return ", ".join(labels[:-1]) + " and " + labels[-1]


def _a(label: str) -> str:
    return ("an " if label[0].lower() in "aeiou" else "a ") + label


# --- card numbers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    name: str
    prefixes: tuple[tuple[int, int], ...]  # inclusive ranges of leading digits, any length
    lengths: tuple[int, ...]

    def matches(self, digits: str) -> bool:
        if len(digits) not in self.lengths:
            return False
        for low, high in self.prefixes:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return True
        return False


_SIXTEEN_TO_19 = (16, 17, 18, 19)
NETWORKS: tuple[Network, ...] = (
    Network("Visa", ((4, 4),), (13, 16, 19)),
    Network("Mastercard", ((51, 55), (2221, 2720)), (16,)),
    Network("American Express", ((34, 34), (37, 37)), (15,)),
    Network("Discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), _SIXTEEN_TO_19),
    Network("JCB", ((3528, 3589),), _SIXTEEN_TO_19),
    Network(
        "Diners Club", ((300, 305), (3095, 3095), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)
    ),
    Network("UnionPay", ((62, 62), (81, 81)), _SIXTEEN_TO_19),
    Network(
        "Maestro",
        ((5018, 5018), (5020, 5020), (5038, 5038), (5893, 5893), (6304, 6304), (6759, 6763)),
        (13, 14, 15, 16, 17, 18, 19),
    ),
)

# Runs of digit groups joined by single spaces or dashes, not touching a letter or digit.
_DIGIT_RUN = re.compile(r"(?<![\w.])\d+(?:[ \-]\d+)*(?![\w])")
_GROUP = re.compile(r"\d+")
_UUID_SHAPED = re.compile(r"\d{8}-\d{4}-\d{4}-\d{4}-\d{12}")  # an id, even when all digits


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def card_network(digits: str) -> Network | None:
    """The network a Luhn-valid number of the right length and prefix belongs to."""
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return None
    return next((n for n in NETWORKS if n.matches(digits)), None)


def _cards(text: str) -> Iterator[Finding]:
    for run in _DIGIT_RUN.finditer(text):
        if _UUID_SHAPED.fullmatch(run[0]):
            continue
        groups = [(run.start() + m.start(), run.start() + m.end()) for m in _GROUP.finditer(run[0])]
        i = 0
        while i < len(groups):
            # Windows of whole groups starting at group i, at most 19 digits: longest card wins.
            digits, windows = "", []
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > 19:
                    break
                windows.append((j + 1, digits))
            for after, candidate in reversed(windows):
                if card_network(candidate) is not None:
                    label = f"card number ending {candidate[-4:]}"
                    yield Finding(
                        FindingKind.CARD_NUMBER, label, groups[i][0], groups[after - 1][1]
                    )
                    i = after
                    break
            else:
                i += 1


# --- secrets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRule:
    kind: FindingKind
    pattern: re.Pattern[str]
    label: Callable[[re.Match[str]], str]
    group: int | str = 0  # the part of the match that is the secret


def _fixed(label: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: label


_SLACK_TOKEN_KINDS = {
    "xoxb": "Slack bot token",
    "xoxp": "Slack user token",
    "xoxa": "Slack app token",
    "xoxo": "Slack token",
    "xoxr": "Slack refresh token",
    "xoxs": "Slack session token",
    "xoxe": "Slack refresh token",
    "xapp": "Slack app-level token",
}


def _slack_label(m: re.Match[str]) -> str:
    token = m[0]
    if token.startswith("xoxe.") and len(token) > 9:  # a rotating token: xoxe.xoxb-…
        token = token[5:]
    return _SLACK_TOKEN_KINDS.get(token[:4].lower(), "Slack token")


_ASSIGNED = r"\s*[:=]\s*[\"']?"
_CREDENTIAL_WORDS = (
    r"password|passwd|passphrase|pwd|secret|client_secret|api_key|apikey|api-key|access_token"
    r"|auth_token|token"
)

SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        FindingKind.PRIVATE_KEY,
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
            re.DOTALL,
        ),
        _fixed("private key"),
    ),
    SecretRule(
        FindingKind.SLACK_WEBHOOK,
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+"),
        _fixed("Slack webhook URL"),
    ),
    SecretRule(
        FindingKind.SLACK_TOKEN,
        re.compile(r"(?<![\w-])(?:xoxe\.)?(?:xox[abeoprs]|xapp)-[A-Za-z0-9\-]{6,}"),
        _slack_label,
    ),
    SecretRule(
        FindingKind.GITHUB_TOKEN,
        re.compile(r"(?<!\w)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})"),
        _fixed("GitHub token"),
    ),
    SecretRule(
        FindingKind.VAULT_TOKEN,
        re.compile(r"(?<![\w.])(?:hv[sbr]\.[A-Za-z0-9_\-]{20,}|s\.[A-Za-z0-9]{24})(?![\w.])"),
        _fixed("Vault token"),
    ),
    SecretRule(
        FindingKind.JWT,
        re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
        _fixed("JSON web token"),
    ),
    SecretRule(
        FindingKind.AWS_ACCESS_KEY,
        re.compile(
            r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Z0-9])"
        ),
        _fixed("AWS access key id"),
    ),
    SecretRule(
        FindingKind.AWS_SECRET_KEY,
        re.compile(
            r"(?i:aws[\w .-]{0,20}?(?:secret|private)[\w .-]{0,20}?)"
            + _ASSIGNED
            + r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
        _fixed("AWS secret access key"),
        "secret",
    ),
    SecretRule(
        FindingKind.PAGERDUTY_TOKEN,
        re.compile(
            r"(?i:\b(?:pagerduty|pd)[\w .-]{0,20}?(?:token|key)\b)"
            + r"(?:\s*[:=]\s*|\s+)[\"']?(?P<secret>[A-Za-z0-9+_\-]{20})(?![A-Za-z0-9+_\-])"
        ),
        _fixed("PagerDuty API token"),
        "secret",
    ),
    SecretRule(
        FindingKind.CREDENTIAL,
        re.compile(
            rf"(?i:(?<![\w-])(?P<word>{_CREDENTIAL_WORDS}))"
            + r"(?:\s*=\s*[\"']?|[\"']\s*:\s*[\"'])"  # `password=…`, or JSON `"password": "…"`
            + r"(?P<secret>(?!\[redacted)[^\s\"',;&<>|]{3,})"
        ),
        lambda m: "password" if m["word"].lower().startswith("pass") else m["word"].lower(),
        "secret",
    ),
)


def _secrets(text: str) -> Iterator[Finding]:
    for rule in SECRET_RULES:
        for m in rule.pattern.finditer(text):
            start, end = m.span(rule.group)
            if start < end:
                yield Finding(rule.kind, rule.label(m), start, end)


# --- together -------------------------------------------------------------------------------


def scan(text: str) -> list[Finding]:
    """Every finding in `text`, in order, none overlapping (the earliest, then longest, wins)."""
    found = sorted([*_secrets(text), *_cards(text)], key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def redact(text: str) -> Guarded:
    findings = scan(text)
    if not findings:
        return Guarded(text, ())
    parts: list[str] = []
    at = 0
    for f in findings:
        parts += [text[at : f.start], f.replacement]
        at = f.end
    parts.append(text[at:])
    return Guarded("".join(parts), tuple(findings))


def redact_all(texts: Sequence[str]) -> tuple[list[str], tuple[Finding, ...]]:
    """Several fields of one input (a form, an alert): redacted texts and all findings."""
    out: list[str] = []
    findings: list[Finding] = []
    for text in texts:
        guarded = redact(text)
        out.append(guarded.text)
        findings += guarded.findings
    return out, tuple(findings)


def redact_value(value: object) -> tuple[object, tuple[Finding, ...]]:
    """`redact` applied to every string inside `value` (dict values, list items; keys kept):
    a timeline entry's data, an outbox payload, an alert's labels."""
    if isinstance(value, str):
        guarded = redact(value)
        return guarded.text, guarded.findings
    if isinstance(value, dict):
        found: list[Finding] = []
        out: dict[object, object] = {}
        for key, item in value.items():
            out[key], more = redact_value(item)
            found += more
        return out, tuple(found)
    if isinstance(value, list | tuple):
        found = []
        items: list[object] = []
        for item in value:
            clean, more = redact_value(item)
            items.append(clean)
            found += more
        return items, tuple(found)
    return value, ()


def found_names(findings: Sequence[Finding]) -> list[str]:
    """`["card number", "Slack bot token"]`: each kind found once, without any digits of it."""
    return list(dict.fromkeys("card number" if f.kind.is_card else f.label for f in findings))


def described(findings: Sequence[Finding]) -> str:
    """`card number and Slack bot token`: the kinds found, without any digits of them."""
    return listed(found_names(findings))


def listed(names: Sequence[str]) -> str:
    """`a, b and c`."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
