"""Print the fault matrix after a run that included it."""

from __future__ import annotations

import pytest

from tests.faults.matrix import table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults.test_fault_matrix import CELLS

    if CELLS:
        terminalreporter.write_sep("=", "fault matrix (what the clients got, per cell)")
        terminalreporter.write_line(table(CELLS))
