"""The pages in a real browser: Playwright (pytest-playwright) drives Debian's chromium against a
real server (uvicorn on a free port, SQLite), as a rep, a manager and a coach would use them.

Every test also checks that the page asked for nothing outside the server. The screenshots of
each page at desktop and phone width are made by bench/screenshots.py.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline import store

from pages_world import EMAILS, PASSWORD, seed_pages

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium); "
                                                               "make setup installs it")


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": str(CHROMIUM), "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real churnwatch server over a seeded SQLite store and a copy of the rules."""
    import uvicorn

    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app

    tmp = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "rules", tmp / "rules")
    url = f"sqlite:///{tmp / 'churnwatch.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    world = seed_pages(engine, tmp)
    app = create_app(load_settings(db_url=url, rules_dir=tmp / "rules"), engine, config=WebConfig(data_dir=tmp / "data"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    yield {"base": f"http://127.0.0.1:{port}", "world": world, "engine": engine, "rules": tmp / "rules"}
    srv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture
def site(server, page):
    """The page, with every request it makes recorded (all must go to the server itself)."""
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.set_default_timeout(20_000)
    yield server, page
    outside = [u for u in requests if not u.startswith(server["base"]) and not u.startswith(("data:", "blob:"))]
    assert not outside, f"the page asked for things outside the server: {outside}"


def sign_in(page, base: str, who: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(EMAILS[who])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def test_rep_marks_a_reminder_done_and_plays_a_cue(site):
    server, page = site
    base, world = server["base"], server["world"]
    sign_in(page, base, "maya")
    assert page.url == f"{base}/inbox"
    first = world.maya_reminders[-1]  # newest first
    row = page.locator(f"#reminder-{first}")
    row.get_by_role("button", name=re.compile("^Done")).click()
    page.locator(f"#reminder-{first}[data-status='done']").wait_for()
    assert "Marked done." in page.locator(f"#reminder-{first}").inner_text()
    with store.session_scope(server["engine"]) as session:
        assert session.get(store.Reminder, first).status == "done"

    page.locator(f"a[href='/calls/{world.maya_call}']").first.click()
    page.wait_for_url(f"{base}/calls/{world.maya_call}")
    player = page.locator("#player")
    player.wait_for()
    cue = page.locator(f"button[data-seek='{world.cue_start:.2f}']").last
    cue.click()
    page.wait_for_function(
        "want => Math.abs(document.getElementById('player').currentTime - want) < 1.0", arg=world.cue_start)
    assert abs(page.evaluate("document.getElementById('player').currentTime") - world.cue_start) < 1.0


def test_rep_cannot_open_another_reps_account(site):
    server, page = site
    sign_in(page, server["base"], "callum")
    response = page.goto(f"{server['base']}/accounts/ACC-1003")  # Maya's account
    assert response.status == 404
    assert "Kestrel" not in page.content() and page.get_by_role("heading", name="Not found").is_visible()
    assert page.goto(f"{server['base']}/accounts/ACC-1002").status == 200


def test_manager_edits_a_rule_sees_the_preview_saves_and_rolls_back(site):
    server, page = site
    base = server["base"]
    path = server["rules"] / "cues" / "pricing_request.yaml"
    original = path.read_text()
    sign_in(page, base, "manager")
    page.goto(f"{base}/rules")
    page.get_by_role("link", name="pricing_request.en.keywords").click()
    page.locator("#now-count").wait_for()  # the preview of the unchanged rule, loaded with the page
    assert page.locator("#now-count").inner_text() == "0"
    phrases = page.get_by_label("Phrases (one per line)")
    phrases.press("End")
    phrases.press("Control+End")
    phrases.type("\nthree months")
    page.wait_for_function("document.getElementById('now-count') && "
                           "document.getElementById('now-count').textContent.trim() !== '0'")
    assert page.locator("#now-count").inner_text() == "2"
    assert "three months" in page.locator("#now-flags mark").first.inner_text()
    assert path.read_text() == original  # a preview changes nothing
    page.get_by_label("What you changed and why (kept in the history)").fill("Catch 'three months' complaints")
    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(re.compile(r".*/rules/pricing_request\.en\.keywords\?saved=1$"))
    assert page.locator(".version").first.get_attribute("data-version") == "2"
    assert "Catch 'three months' complaints" in page.locator("#history").inner_text()
    assert "three months" in path.read_text()
    page.get_by_role("button", name="Roll back to version 1").click()
    page.wait_for_url(re.compile(r".*\?saved=1$"))
    assert page.locator(".version").first.get_attribute("data-version") == "3"
    assert path.read_text() == original


def test_coach_sees_the_coaching_chart(site):
    server, page = site
    sign_in(page, server["base"], "coach")
    assert page.url == f"{server['base']}/coach"
    chart = page.locator("svg.chart").first
    chart.wait_for()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 30
