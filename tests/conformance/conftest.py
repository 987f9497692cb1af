"""Prints the conformance suite's per-operator table at the end of the run, or the one line that
says why it did not run (PyTorch or expecttest missing, another PyTorch version)."""

from __future__ import annotations

from . import report


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
    tr = terminalreporter
    if report.STATE["not_run"]:
        tr.write_line(f"conformance (PyTorch OpInfo): did not run: {report.STATE['not_run']}")
        return
    if not report.COUNTS:
        return  # the suite was deselected
    tr.section("conformance: chainrule against PyTorch's OpInfo samples (float64)")
    for line in report.table():
        tr.write_line(line)
