"""Numbers as people read them: one rule for what was measured, one for counted nouns.

A measured value (a rate, a lag, a ratio) is shown with as many decimals as its size deserves,
the same way wherever it appears (`4.5%` in a finding and in its detail, never `4.49969%`
beside `(4.50%)`). A threshold is what someone wrote in a playbook and is shown as written
(`:g`), so `1%` stays `1%`.
"""

from __future__ import annotations


def measured(value: float) -> str:
    """`127`, `42.5`, `4.5`, `0.031`: whole numbers whole; else at most 3 significant figures
    (two decimals under 10, one under 100, none above; 2 figures under 1), no trailing zeros."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return _trim(f"{value:.1f}")
    if size >= 1:
        return _trim(f"{value:.2f}")
    return f"{value:.2g}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 approval`, `2 approvals`; `many` for irregular words (`1 entry`, `2 entries`)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
