"""Screenshots of every page, as a rep, a manager, a coach and an admin see them, at desktop and
phone width, from the demo's own data (the sample calls ingested for real).

    python bench/screenshots.py [--db sqlite:///churnwatch-demo.db] [--out screenshots/]

Without --db (or when the file is missing) it runs the demo first (a few minutes: Whisper on
the eight sample calls) into a fresh database. It then imports the sample opportunity history
and leads, adds four users with a known password, starts `churnwatch serve`'s app on a free port
and drives Debian's chromium with Playwright. Prints one line per PNG written.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/pipeline.py (a benchmark) would shadow the package when this folder leads sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "screenshots only"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
USERS = {"rep": ("maya@demo.example.com", "Maya Okafor"), "manager": ("manager@demo.example.com", None),
         "coach": ("coach@demo.example.com", None), "admin": ("admin@demo.example.com", None)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(db_url: str, rules_dir: Path) -> dict:
    """Users with passwords, the funnel samples, and the ids the page list needs."""
    from sqlalchemy import select

    from pipeline import crm, store
    from pipeline import funnel as fn
    from pipeline.store.tables import Opportunity

    engine = store.make_engine(db_url)
    store.ensure_db(engine)
    with store.session_scope(engine) as session:
        if session.scalar(select(store.User).where(store.User.email == USERS["rep"][0])) is None:
            for role, (email, rep) in USERS.items():
                store.add_user(session, email, role, rep_name=rep, password=PASSWORD)
        if session.scalar(select(Opportunity.id).limit(1)) is None:
            stages = fn.load_funnel(rules_dir / "funnel.yaml")
            for kind in ("opportunities", "leads"):
                crm.import_csv(session, ROOT / "samples" / "crm" / f"{kind}.csv", kind, funnel=stages)
        rep = session.scalar(select(store.Rep).where(store.Rep.name == USERS["rep"][1]))
        call = session.scalar(select(store.Call).where(store.Call.rep_id == rep.id).order_by(store.Call.id))
        first_rule = "cancellation_intent.en.keywords"
    return {"engine": engine, "call": call.id, "account": call.account_id, "rule": first_rule}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="a database the demo filled (default: run the demo into a fresh one)")
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app

    work = Path(tempfile.mkdtemp(prefix="churnwatch-shots-"))
    db_url = args.db
    if not db_url or (db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).exists()):
        db_url = f"sqlite:///{work / 'demo.db'}"
        import subprocess

        print("running the demo into", db_url, "(a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--db", db_url], check=True,
                       stdout=subprocess.DEVNULL)
    rules_dir = work / "rules"
    shutil.copytree(ROOT / "rules", rules_dir)  # the rule editor may write; never into the project's rules
    ids = prepare(db_url, rules_dir)
    app = create_app(load_settings(db_url=db_url, rules_dir=rules_dir), ids["engine"],
                     config=WebConfig(data_dir=work / "data"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "rep": ["/inbox", f"/calls/{ids['call']}", f"/accounts/{ids['account']}", "/accounts"],
        "manager": ["/risk", "/rules", f"/rules/{ids['rule']}", "/review", "/funnel"],
        "coach": ["/coach"],
        "admin": ["/users"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-background-networking"])
        for role, paths in pages.items():
            for size, viewport in SIZES.items():
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                page.goto(f"{base}/login")
                page.get_by_label("E-mail").fill(USERS[role][0])
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state("networkidle")
                for path in paths:
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                    name = path.strip("/").replace("/", "-").replace(".", "_") or "home"
                    out = args.out / f"{role}-{name}-{size}.png"
                    page.screenshot(path=str(out), full_page=True)
                    print(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out, flush=True)
                context.close()
        browser.close()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
