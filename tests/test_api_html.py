"""HTML pages load nothing from another host: their scripts and styles are vendored and served by us."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.fixtures.browser import needs_chromium

# Attributes through which a page makes the browser fetch something.
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data"}
# <link> relations a browser fetches while loading the page.
FETCHED_LINKS = {"stylesheet", "icon", "preload", "modulepreload", "manifest"}


class _References(HTMLParser):
    """Every URL a page refers to, as (tag, attribute, url)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link" and not FETCHED_LINKS & set((dict(attrs).get("rel") or "").split()):
            tag = "link-data"  # e.g. rel=alternate: named for clients, not fetched by the page
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value:
                self.found.append((tag, name, value.strip()))


def references(page: str) -> list[tuple[str, str, str]]:
    parser = _References()
    parser.feed(page)
    return parser.found


@pytest.fixture(scope="module")
def tree_id(api_server: str) -> str:
    page = httpx.get(f"{api_server}/collections/trees/items", params={"limit": 1}).json()
    return str(page["features"][0]["id"])


PAGES = [
    "/",
    "/conformance",
    "/collections",
    "/collections/trees",
    "/collections/trees/items",
    "/collections/trees/items/{tree_id}",
    "/collections/trees/queryables",
    "/map",
    "/openapi",
]


@pytest.mark.parametrize("path", PAGES)
def test_page_refers_only_to_this_server(api_server: str, tree_id: str, path: str) -> None:
    url = api_server + path.format(tree_id=tree_id)
    page = httpx.get(url, params={"f": "html"}, headers={"Accept": "text/html"})
    assert page.status_code == 200, url
    assert page.headers["content-type"].startswith("text/html")
    here = urlsplit(api_server).netloc
    found = references(page.text)
    assets = [(tag, u) for tag, attr, u in found if tag != "a"]
    assert any(tag == "link" for tag, _ in assets)  # at least its stylesheet
    foreign = [
        (tag, u) for tag, u in assets
        if urlsplit(urljoin(url, u)).scheme in ("http", "https")
        and urlsplit(urljoin(url, u)).netloc != here
    ]
    assert foreign == []  # nothing fetched from a CDN (or any other host)
    # Plain links may lead elsewhere (licence, pygeoapi.io) but never to a CDN.
    cdns = ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "fonts.googleapis.com")
    assert not [u for _, _, u in found if urlsplit(u).netloc in cdns]
    for tag, asset in assets:
        target = urljoin(url, asset)
        if tag in ("script", "link", "img") and urlsplit(target).scheme in ("http", "https"):
            assert httpx.get(target).status_code == 200, target


def test_leaflet_pages_use_the_vendored_leaflet(api_server: str, tree_id: str) -> None:
    for path in ("/collections/trees", "/collections/trees/items", f"/collections/trees/items/{tree_id}"):
        page = httpx.get(f"{api_server}{path}", params={"f": "html"}).text
        scripts = [u for tag, _, u in references(page) if tag == "script"]
        assert f"{api_server}/static/vendor/leaflet/leaflet.js" in scripts, path
    # The marker images Leaflet's stylesheet points at are served too.
    assert httpx.get(f"{api_server}/static/vendor/leaflet/images/marker-icon.png").status_code == 200


def test_openapi_pages_use_the_vendored_swagger_ui(api_server: str) -> None:
    page = httpx.get(f"{api_server}/openapi", params={"f": "html"}).text
    scripts = [u for tag, _, u in references(page) if tag == "script"]
    assert f"{api_server}/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in scripts
    assert "validatorUrl: null" in page  # Swagger UI would otherwise show validator.swagger.io
    # ReDoc cannot run without fetching from other hosts: ?ui=redoc leads to Swagger UI.
    redoc = httpx.get(f"{api_server}/openapi", params={"f": "html", "ui": "redoc"})
    assert redoc.status_code == 200
    assert not [u for tag, _, u in references(redoc.text) if tag == "script"]
    assert "/openapi?f=html" in redoc.text


@pytest.mark.browser
@needs_chromium
def test_items_page_works_with_only_this_server_reachable(browser: Any, api_server: str) -> None:
    here = urlsplit(api_server).netloc
    elsewhere: list[str] = []
    errors: list[str] = []

    def only_here(route: Any) -> None:
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:  # the network is closed beyond this server
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", only_here)
    page.goto(f"{api_server}/collections/trees/items?f=html&limit=20",
              wait_until="networkidle")
    assert page.evaluate("typeof L !== 'undefined' && typeof L.markerClusterGroup")
    page.wait_for_selector(".leaflet-marker-icon, .marker-cluster", timeout=10_000)
    bootstrap_rules = page.evaluate(
        "[...document.styleSheets].filter(s => (s.href || '').endsWith('bootstrap.min.css'))"
        ".map(s => s.cssRules.length)"
    )
    assert elsewhere == []
    assert errors == []
    assert len(bootstrap_rules) == 1 and bootstrap_rules[0] > 1000  # the stylesheet loaded
