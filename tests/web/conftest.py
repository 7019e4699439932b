"""Fixtures of the web and worker tests: the book (two reps, a manager, a coach, with tokens), a
TestClient over the app, and `fake_ingest`, which answers at once for the tests about the queue,
not the models. The helpers they use are in web_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.flow import ingest

from web_helpers import Book, FakeIngest, seed_crm


@pytest.fixture
def book(engine) -> Book:
    return seed_crm(engine)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(engine, book, data_dir):
    from fastapi.testclient import TestClient

    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app

    app = create_app(load_settings(db_url=str(engine.url)), engine,
                     config=WebConfig(data_dir=data_dir, max_upload_bytes=1 << 20))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def fake_ingest(monkeypatch) -> FakeIngest:
    fake = FakeIngest()
    monkeypatch.setattr(ingest, "ingest_file", fake)
    return fake
