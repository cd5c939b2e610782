"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser) against
Django's live test server."""

import os
from pathlib import Path

import pytest
from django.contrib.staticfiles import handlers

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Playwright's sync API runs an event loop in the main thread; the live server's teardown would
# otherwise refuse its database flush as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class _ServedByTheSite(handlers.StaticFilesHandler):
    """The live server's static files come through the site's own middleware (whitenoise), as
    in production and the demo: compressed forms, cache headers, the same bytes a browser gets.
    Django's test handler would serve them raw."""

    def _should_handle(self, path):
        return False


handlers.StaticFilesHandler = _ServedByTheSite


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(
            reason=f"needs Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
        )
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
