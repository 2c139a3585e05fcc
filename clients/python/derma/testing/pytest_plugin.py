"""pytest plugin: a fresh simulated derma station per test.

Installed with the `derma` package (entry point `pytest11`), so nothing needs to be imported.
Fixtures:
    derma_station   a derma.testing.Station: dermad on a free port, virtual clock, its own
                    state folder; stopped at teardown (a dermad that does not exit 0 on
                    SIGTERM fails the test's teardown)
    derma_client    derma_station.client, a connected derma.Client
    derma_fleet     the fleet config file the station runs (override it in a conftest.py to
                    return another path; default: --derma-fleet, else the package's default
                    fleet pen-1, pen-2, stim-1, stim-2)
Per test, the marker `@pytest.mark.derma(fleet=PATH, fleet_text=TEXT, clock="virtual",
metrics=False, args=[...])` changes the station (start_dermad's arguments of those names).
Options (command line, or the ini file without the leading dashes and with underscores):
    --derma-dermad PATH   the dermad binary (else $DERMA_DERMAD, else dermad on PATH)
    --derma-fleet PATH    the default fleet config for every test
When a test using the station fails, dermad's log is added to its report as the section
"dermad log" (shown with pytest's failure output; `--show-capture=no` hides it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from derma.client import Client
from derma.testing.station import DEFAULT_FLEET, Station, start_dermad

_STATION_KEY = pytest.StashKey[Station]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("derma", "derma test stations")
    group.addoption("--derma-dermad", dest="derma_dermad", metavar="PATH",
                    help="the dermad binary (default: $DERMA_DERMAD, else dermad on PATH)")
    group.addoption("--derma-fleet", dest="derma_fleet", metavar="PATH",
                    help="fleet config for derma_station (default: derma.testing's own)")
    parser.addini("derma_dermad", "the dermad binary for derma_station")
    parser.addini("derma_fleet", "fleet config for derma_station")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "derma(fleet=None, fleet_text=None, clock='virtual', metrics=False, "
                   "args=()): how derma_station starts dermad for this test")


def _option(config: pytest.Config, name: str) -> Optional[str]:
    """A path option from the command line, else the ini file (relative to the ini file)."""
    value = config.getoption(name)
    if value:
        return value
    value = config.getini(name)
    if value and config.inipath is not None:
        return str(Path(config.inipath).parent / value)
    return value or None


@pytest.fixture
def derma_fleet(request: pytest.FixtureRequest) -> Path:
    """The fleet config derma_station runs unless the test's `derma` marker names another."""
    path = _option(request.config, "derma_fleet")
    return Path(path) if path else DEFAULT_FLEET


@pytest.fixture
def derma_station(request: pytest.FixtureRequest, derma_fleet: Path) -> Iterator[Station]:
    """A dermad for this test (see the module's docstring)."""
    marker = request.node.get_closest_marker("derma")
    settings: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = set(settings) - {"fleet", "fleet_text", "clock", "metrics", "args"}
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.derma: unknown argument(s) {sorted(unknown)}")
    if "fleet" not in settings and "fleet_text" not in settings:
        settings["fleet"] = derma_fleet
    with start_dermad(dermad=_option(request.config, "derma_dermad"), **settings) as station:
        request.node.stash[_STATION_KEY] = station
        yield station


@pytest.fixture
def derma_client(derma_station: Station) -> Client:
    """A derma.Client connected to this test's derma_station."""
    assert derma_station.client is not None
    return derma_station.client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    station = item.stash.get(_STATION_KEY, None)
    if station is not None and report.failed:
        report.sections.append(("dermad log", station.log_text()))
