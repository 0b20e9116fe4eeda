"""Chaos tests: the ``chaos`` marker, and their counts printed at the end of the run (with or without -s)."""

from __future__ import annotations

import pytest

SUMMARIES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: payment flows under random upstream faults and service restarts")
    config.stash[SUMMARIES] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for summary in config.stash.get(SUMMARIES, []):
        terminalreporter.write_sep("=", "payment chaos")
        terminalreporter.write_line(summary)


@pytest.fixture(scope="session")
def chaos_summaries(pytestconfig: pytest.Config) -> list[str]:
    """Append a run's counts here: they are printed in the terminal summary."""
    return pytestconfig.stash[SUMMARIES]
