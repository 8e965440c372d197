"""Makes a skipped or expected-to-fail test fail the run: every test here must run and pass."""

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    if stats.get("skipped") or stats.get("xfailed") or stats.get("xpassed"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
