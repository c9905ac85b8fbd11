"""Browser tests: Playwright driving Debian's Chromium headless against ``live_server``.

The browser is the system's ``chromium`` package (``make chromium`` installs it), never a build
downloaded by Playwright. Screenshots of the key pages go to ``artifacts/browser/`` (or
``TEST_ARTIFACTS_DIR``), which is not committed. These tests run last in a session: the live
server needs a transactional database, which is emptied after each of them.
"""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API keeps an event loop in the test thread; Django's ORM calls from the test
# itself (fixtures, assertions) are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / "artifacts" / "browser")
#: axe-core, installed from npm by `make test-tools` (pinned in test-tools/package.json).
AXE_JS = Path(__file__).resolve().parents[2] / "test-tools" / "node_modules" / "axe-core" / "axe.min.js"
#: The audit's rule sets: WCAG 2.0, 2.1 and 2.2 at levels A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Run the browser tests after every other test (their database is flushed after each)."""
    browser = [item for item in items if "tests/browser/" in str(item.fspath).replace(os.sep, "/")]
    others = [item for item in items if item not in browser]
    items[:] = others + browser


#: Products per top-level category in the browser tests' catalog: 7 x 4 + the towels = 32, enough
#: for two result pages of 24.
PER_CATEGORY = 4


@pytest.fixture
def shop_catalog(transactional_db):
    """A sample of the real Flipkart catalog, imported and indexed (real encoders).

    Earlier transactional tests empty the database, so the sample is imported here rather than
    taken from ``indexed_catalog``; when the rows are still there, the import finds them
    unchanged and indexing reuses their stored embeddings.
    """
    from search.services import products_index
    from shop.importers import read_catalog
    from shop.services import catalog_import
    from tests.conftest import flipkart_dir, sample_flipkart_ids

    wanted = set(sample_flipkart_ids(PER_CATEGORY))
    summary = catalog_import([r for r in read_catalog("flipkart", flipkart_dir()) if r.external_id in wanted])
    products_index(product_ids=summary.product_ids)
    return summary


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: run `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _serve_media(route, request) -> None:
    """Product photos: the live server serves static files but not MEDIA_ROOT (DEBUG is off)."""
    relative = request.url.split(settings.MEDIA_URL, 1)[1].split("?", 1)[0]
    path = (Path(settings.MEDIA_ROOT) / relative).resolve()
    if Path(settings.MEDIA_ROOT).resolve() in path.parents and path.is_file():
        route.fulfill(status=200, body=path.read_bytes(), content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    else:
        route.fulfill(status=404, body=b"")


#: A desktop Chrome's user agent. Headless Chromium says "HeadlessChrome", which the click guards
#: treat as a bot (no impression, no click), as they should.
DESKTOP_CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"


def _new_page(browser, live_server, **options):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=live_server.url, **options)
    context.route(f"**{settings.MEDIA_URL}**", _serve_media)
    page = context.new_page()
    page.set_default_timeout(60_000)  # the first query loads the encoders in the server thread
    return context, page


@pytest.fixture
def page(browser, live_server):
    context, page = _new_page(browser, live_server)
    yield page
    context.close()


@pytest.fixture
def shopper_page(browser, live_server):
    """A page whose browser reports a desktop Chrome user agent, so its impressions and clicks count."""
    context, page = _new_page(browser, live_server, user_agent=DESKTOP_CHROME)
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """``screenshot("name")`` saves a full-page PNG of the current page as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.skip(f"axe-core is not installed at {AXE_JS}: run `make test-tools` (npm ci in test-tools/)")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture
def axe_audit(axe_source):
    """``axe_audit(page, name)`` runs axe-core in the page and returns its violations, one line each:
    ``"<rule id> (<impact>): <help> -> <CSS targets>"`` (an empty list is a pass). The full
    report (every node's HTML and the reason) is saved as ``artifacts/browser/axe/<name>.json``.
    ``within="<CSS selector>"`` audits only that part of the page (e.g. a panel added to an admin page)."""

    def run(page, name: str, within: str | None = None) -> list[str]:
        page.add_script_tag(content=axe_source)
        result = page.evaluate(
            "([tags, within]) => axe.run(within ? {include: [within]} : document,"
            " {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", [AXE_TAGS, within],
        )
        (ARTIFACTS / "axe").mkdir(parents=True, exist_ok=True)
        report = [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                   "nodes": [{"target": n["target"], "html": n["html"], "why": n["failureSummary"]} for n in v["nodes"]]}
                  for v in result["violations"]]
        (ARTIFACTS / "axe" / f"{name}.json").write_text(json.dumps({"url": page.url, "violations": report}, indent=2), encoding="utf-8")
        return [
            f"{v['id']} ({v['impact']}): {v['help']} -> {', '.join(str(n['target']) for n in v['nodes'][:5])}"
            for v in result["violations"]
        ]

    return run
