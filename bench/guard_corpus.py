"""The guard on realistic incident chatter: how often it redacts what it should not, and how fast.

Builds a seeded corpus of war-room messages full of numbers that are *not* card numbers or
secrets (order and payment ids, amounts, timestamps, epoch milliseconds, latencies, versions,
IPs, pod names, trace ids, UUIDs, commit SHAs, Kafka offsets, phone numbers, IBANs), then a
second corpus with one real-looking card number or secret planted in each message. Prints the
false-positive rate on the first (any finding is false) and the miss rate on the second, with
the messages scanned per second.

    python bench/guard_corpus.py                 # 20,000 messages each, seed 7
    python bench/guard_corpus.py --messages 2000 --show 10
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.guard import luhn_valid, redact

SERVICES = ["payment-service", "ledger", "wallet-api", "fraud-scorer", "card-gateway", "saga"]
IBAN_SAMPLES = ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
                "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300"]  # fmt: skip


def _order_id(r: random.Random) -> str:
    return r.choice([f"ORD-{r.randint(2024, 2026)}-{r.randint(0, 999999):06d}",
                     f"pay_{''.join(r.choices(string.ascii_letters + string.digits, k=14))}",
                     str(r.randint(10**9, 10**12)), f"TXN{r.randint(10**11, 10**12)}"])  # fmt: skip


def _timestamp(r: random.Random) -> str:
    return r.choice([
        f"2026-12-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:05",
        f"2026-12-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
        str(r.randint(1_700_000_000_000, 1_800_000_000_000)),  # epoch ms
        str(r.randint(1_700_000_000, 1_800_000_000)),  # epoch s
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
    ])  # fmt: skip


def _phone(r: random.Random) -> str:
    return r.choice([f"+44 20 {r.randint(7000, 7999)} {r.randint(1000, 9999)}",
                     f"+1-{r.randint(200, 999)}-555-{r.randint(1000, 9999)}",
                     f"+971 4 {r.randint(100, 999)} {r.randint(1000, 9999)}"])  # fmt: skip


def _number_thing(r: random.Random) -> str:
    kind = r.randrange(13)
    if kind == 12:  # a 16-digit bank reference: shaped like a PAN, so some of these are flagged
        return "".join(r.choices(string.digits, k=16))
    if kind == 0:
        return _order_id(r)
    if kind == 1:
        return _timestamp(r)
    if kind == 2:
        return f"{r.randint(1, 9999)}ms"
    if kind == 3:
        return f"{r.randint(0, 99)}.{r.randint(0, 9)}.{r.randint(0, 20)}"
    if kind == 4:
        return ".".join(str(r.randint(1, 254)) for _ in range(4))
    if kind == 5:
        return f"{r.choice(SERVICES)}-{r.randint(10**8, 10**9):x}-{r.randint(10**4, 10**5):x}"
    if kind == 6:
        return str(uuid.UUID(int=r.getrandbits(128)))
    if kind == 7:
        return f"{r.getrandbits(160):040x}"
    if kind == 8:
        return f"offset {r.randint(0, 10**12)}"
    if kind == 9:
        return _phone(r)
    if kind == 10:
        return r.choice(IBAN_SAMPLES)
    return f"${r.randint(1, 99999)}.{r.randint(0, 99):02d}"


TEMPLATES = [
    "{svc} p99 is {n}, error rate {pct}% since {n}",
    "seeing declines for {n} and {n}, customer says charged twice",
    "rolled back {svc} to {n}; pods {n} restarting",
    "kafka lag on payments.events partition {p} at {n}",
    "PD {n} acked by dana, escalating at {n}",
    "customer called {n} about refund {n} of {n}",
    "trace {n} shows the saga stuck at step 3 for {n}",
    "reconciliation batch {n} mismatched {n} rows, ledger total {n}",
    "who has the runbook for {svc}? last deploy {n} by sam",
    "the token expired at {n}; password reset flow also failing for {n}",
    "kubectl rollout undo deployment/{svc} --to-revision={p}",
    "IBAN on the failing transfer: {n}",
]


def chatter(r: random.Random) -> str:
    text = r.choice(TEMPLATES)
    while "{" in text:
        text = (
            text.replace("{svc}", r.choice(SERVICES), 1)
            .replace("{pct}", f"{r.uniform(0, 9):.2f}", 1)
            .replace("{p}", str(r.randint(0, 31)), 1)
            .replace("{n}", _number_thing(r), 1)
        )
    return text


def _card(r: random.Random) -> str:
    prefix, length = r.choice([("4", 16), ("51", 16), ("37", 15), ("6011", 16), ("3530", 16),
                               ("36", 14), ("62", 16), ("6759", 16), ("2221", 16)])  # fmt: skip
    digits = prefix + "".join(r.choices(string.digits, k=length - 1 - len(prefix)))
    digits += next(d for d in string.digits if luhn_valid(digits + d))
    sep = r.choice(["", " ", "-"])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


def _secret(r: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    return r.choice([
        f"xoxb-{r.randint(10**10, 10**11)}-{''.join(r.choices(alnum, k=24))}",
        f"AKIA{''.join(r.choices(string.ascii_uppercase + string.digits, k=16))}",
        f"ghp_{''.join(r.choices(alnum, k=36))}",
        f"hvs.{''.join(r.choices(alnum, k=24))}",
        f"password={''.join(r.choices(alnum, k=12))}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=5, help="false positives to print")
    args = parser.parse_args()
    r = random.Random(args.seed)
    clean = [chatter(r) for _ in range(args.messages)]
    planted = [
        (f"{m} {s}", s)
        for m, s in ((chatter(r), _card(r) if r.random() < 0.5 else _secret(r))
                     for _ in range(args.messages))
    ]  # fmt: skip

    started = time.perf_counter()
    false = [(m, g) for m in clean if (g := redact(m)).findings]
    pan_shaped = [m for m, g in false if all(f.kind == "card_number" for f in g.findings)]
    seconds = time.perf_counter() - started
    missed = [(m, s) for m, s in planted if s in redact(m).text]

    print(f"corpus: {len(clean)} messages of chatter (seed {args.seed}), "
          f"{sum(map(len, clean)) / len(clean):.0f} characters on average")  # fmt: skip
    print(f"false positives: {len(false)} ({100 * len(false) / len(clean):.3f}% of messages)")
    print(f"  of which a random 16-digit reference that is a valid card number by shape: "
          f"{len(pan_shaped)}")  # fmt: skip
    print(f"missed plants:   {len(missed)} of {len(planted)} cards/secrets")
    print(
        f"speed: {len(clean) / seconds:,.0f} messages/s ({1e6 * seconds / len(clean):.1f} µs each)"
    )
    for message, guarded in false[: args.show]:
        print(f"  FP: {message!r} -> {guarded.text!r}")
    for message, secret in missed[: args.show]:
        print(f"  MISSED: {secret!r} in {message!r}")


if __name__ == "__main__":
    main()
