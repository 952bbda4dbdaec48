"""A page URL opened as the first request after the console starts."""

from __future__ import annotations

from tests.ui.test_browser import browser_page, console_url  # noqa: F401 - fixtures


def test_deep_link_first_request_keeps_navigation(console_url: str, browser_page) -> None:  # noqa: F811
    browser_page.goto(f"{console_url}/incidents")
    browser_page.get_by_role("heading", name="Incidents", exact=True).wait_for(timeout=60_000)
    links = browser_page.get_by_role("link")
    # A link's text starts with its icon's ligature name ("monitoring"), then the title.
    texts = [links.nth(i).inner_text().strip() for i in range(links.count())]
    names = {text.splitlines()[-1].strip() for text in texts if text}
    assert {"Live", "Analyze", "Incidents", "Settings"} <= names
    # Helper modules of the console must never show up as pages.
    assert not names & {"shared", "sidebar", "data", "report", "app"}
