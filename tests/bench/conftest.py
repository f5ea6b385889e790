"""Prints the quick benchmarks' ratios in pytest's terminal summary: reported for reading, never a verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

QUICK_RATIOS: list[dict[str, object]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not QUICK_RATIOS:
        return
    terminalreporter.section("quick benchmarks (ratios reported, not asserted; `make bench-check` asserts them)")
    for row in QUICK_RATIOS:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        verdict = "meets" if row["passed"] else "behind"
        terminalreporter.write_line(f"{row['what']}: {ratio} (target {row['target']}, {verdict}) vs {row['reference']}")
