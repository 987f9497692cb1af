"""The per-operator counts of the conformance run, kept while it runs and printed at its end.

Imports nothing from PyTorch, so the terminal summary can say that the suite did not run.
"""

from __future__ import annotations

from collections import Counter, defaultdict

# outcome of each sample: "match" (values, shapes, dtypes and gradients agree; "grads" counts
# the gradients compared, one per floating input PyTorch differentiates; "translated" the
# samples whose arguments the mapping rewrote for an allowlisted convention), "allowed"
# (an allowlisted difference: skipped with its reason), or a failure ("values", "shape",
# "dtype", "gradient", "structure", "refused", "raw", "unlisted").
COUNTS: defaultdict[str, Counter] = defaultdict(Counter)
USED: set[str] = set()  # the allowlist tags some sample used
STATE = {"collected": 0, "ran": 0, "not_run": ""}

FAILURES = ("values", "shape", "dtype", "gradient", "structure", "refused", "raw", "unlisted")


def record(op: str, outcome: str, translated: bool = False, grads: int = 0) -> None:
    COUNTS[op][outcome] += 1
    COUNTS[op]["grads"] += grads
    if translated:
        COUNTS[op]["translated"] += 1
    STATE["ran"] += 1


def table() -> list[str]:
    """The per-operator table, one line per OpInfo entry, and a total line."""
    head = (f"{'operator':<44}{'samples':>8}{'match':>7}{'grads':>7}{'transl':>7}{'allowed':>8}"
            f"{'failed':>7}")
    lines = [head, "-" * len(head)]
    total: Counter = Counter()
    for op in sorted(COUNTS):
        c = COUNTS[op]
        failed = sum(c[f] for f in FAILURES)
        n = c["match"] + c["allowed"] + failed
        row = Counter(samples=n, match=c["match"], grads=c["grads"], translated=c["translated"],
                      allowed=c["allowed"], failed=failed)
        total.update(row)
        lines.append(_row(op, row))
    lines.append("-" * len(head))
    lines.append(_row(f"total ({len(COUNTS)} operators)", total))
    kinds = Counter()
    for c in COUNTS.values():
        kinds.update({f: c[f] for f in FAILURES if c[f]})
    if kinds:
        lines.append("failures by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return lines


def _row(name: str, c: Counter) -> str:
    return (f"{name:<44}{c['samples']:>8}{c['match']:>7}{c['grads']:>7}{c['translated']:>7}"
            f"{c['allowed']:>8}{c['failed']:>7}")
