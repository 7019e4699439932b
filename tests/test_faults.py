"""Fault injection: hundreds of bad inputs must each end in a one-line error naming the file,
never a traceback, and must leave the data already stored exactly as it was.

Inputs are generated into tmp_path from a fixed seed: corrupt audio (random bytes, a real
header followed by garbage, real files cut at random offsets), empty and silent files,
unsupported files under audio names, odd file names; CRM CSVs with bad rows, missing columns
and binary content; invalid rule files. The CLI runs in-process (CliRunner) with the session's
toolkit, one ingest batch for all bad audio.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import inspect, text
from test_ingest import ACCOUNT, load_kit, make_clips
from typer.testing import CliRunner

from pipeline.flow import ingest
from pipeline import store

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "samples" / "audio"
REAL = [AUDIO / "call_01.flac", AUDIO / "call_02.mp3", AUDIO / "call_03.wav", AUDIO / "call_04.ogg",
        AUDIO / "call_06.m4a", ROOT / "tests" / "data" / "two_voices.stereo.ogg"]
SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a")
ODD_STEMS = ["with space", "ünïcødé 通話", "-leading-dash", "quote's \"double\"", "semi;colon & amp",
             "$(echo hi)", "tab\there", "#hash %percent", "..dots..", "ends with space "]


# --- the database of good data and its snapshot ----------------------------------------------


def snapshot(engine) -> dict[str, tuple[int, str]]:
    """Every table: (row count, sha256 of its rows in primary-key order)."""
    out = {}
    with engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1')).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            out[name] = (len(rows), digest)
    return out


@pytest.fixture(scope="module")
def kit():
    return load_kit()


@pytest.fixture(scope="module")
def good_db(tmp_path_factory, kit):
    """A SQLite store holding one good call, plus its snapshot."""
    folder = tmp_path_factory.mktemp("good")
    url = f"sqlite:///{folder / 'good.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    clip = make_clips(folder, 1, base=9.0)[0]
    result = ingest.ingest_file(engine, clip, kit, ingest.IngestOptions(account_id=ACCOUNT, rep="Maya Okafor"))
    assert result.status == "ok", result.error
    before = snapshot(engine)
    assert before["calls"][0] == 1 and before["segments"][0] >= 2 and before["cues"][0] >= 1
    yield url, engine, before
    engine.dispose()


@pytest.fixture
def cli(monkeypatch, kit):
    """Invoke the CLI in-process, reusing the loaded toolkit."""
    from pipeline.cli import app

    monkeypatch.setattr(ingest, "load_toolkit", lambda settings, **options: kit)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def no_traceback(res) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.stdout + res.stderr


# --- bad audio ---------------------------------------------------------------------------------


def bad_audio(folder: Path, rng: random.Random) -> list[Path]:
    """About 170 files that no decoder should accept, under many names and suffixes."""
    made: list[Path] = []

    def put(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        made.append(path)

    for i in range(8):  # random bytes under every audio suffix
        for suf in SUFFIXES:
            put(f"random_{i}{suf}", rng.randbytes(rng.choice([1, 17, 512, 4096, 65536])))
    for real in REAL:  # a real header, then garbage
        head = real.read_bytes()[: rng.randint(64, 1024)]
        for i in range(6):
            put(f"header_garbage_{i}_{real.stem}{real.suffix}", head + rng.randbytes(rng.randint(10, 20000)))
    for real in REAL:  # real files cut at random offsets before their first ~0.1 s of audio
        data = real.read_bytes()  # (a cut Ogg file with a second of audio is a valid short file)
        for i in range(7):
            cut = rng.randint(0, 2500 if real.suffix == ".ogg" else 6000)
            put(f"truncated_{i}_{real.stem}{real.suffix}", data[:cut])
    for suf in SUFFIXES:  # empty
        put(f"empty{suf}", b"")
        put(f"empty again{suf}", b"")
    for seconds, channels, fmt, suf in [(0.0, 1, "WAV", ".wav"), (0.01, 1, "WAV", ".wav"), (1.0, 1, "WAV", ".wav"),
                                        (5.0, 2, "WAV", ".wav"), (30.0, 1, "FLAC", ".flac"),
                                        (3.0, 2, "FLAC", ".flac"), (2.0, 1, "OGG", ".ogg"),
                                        (12.0, 2, "OGG", ".ogg")]:  # digital silence
        path = folder / f"silent_{seconds}s_{channels}ch{suf}"
        sf.write(path, np.zeros((int(seconds * 16000), channels), np.float32), 16000, format=fmt)
        made.append(path)
    text_bytes = b"account_id,date\nACC-1,2024-01-01\nThis is not a recording.\n"
    midi = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00`MTrk\x00\x00\x00\x04\x00\xff/\x00"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(200)
    for suf in SUFFIXES:  # other formats under audio names
        put(f"notes.txt{suf}", text_bytes)
        put(f"tune.mid{suf}", midi)
        put(f"paper{suf}", pdf)
        put(f"image{suf}", png)
    for stem in ODD_STEMS:  # odd names, bad content
        put(f"{stem}{rng.choice(SUFFIXES)}", rng.randbytes(300))
    sub = folder / "x.wav"  # a folder named like a recording holds a bad file (folders expand)
    sub.mkdir()
    (sub / "inner.mp3").write_bytes(rng.randbytes(100))
    made.append(sub / "inner.mp3")
    return made


def test_bad_audio_batch_reports_each_file_and_changes_nothing(tmp_path, good_db, cli, monkeypatch):
    url, engine, before = good_db
    rng = random.Random(20261006)
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = bad_audio(folder, rng)
    assert len(bad) >= 160
    monkeypatch.chdir(folder)  # relative names, so a leading dash reaches the decoders as typed
    args = [p.relative_to(folder) for p in bad if p.parent == folder] + [Path("x.wav")]

    res = cli("ingest", "--account", ACCOUNT, "--db", url, "--json", "--", *args)

    no_traceback(res)
    assert res.stdout.startswith("["), res.output[-2000:]
    out = json.loads(res.stdout)
    assert len(out) == len(bad)
    failed = [r for r in out if r["status"] == "error"]
    assert len(failed) == len(bad), [r["file"] for r in out if r["status"] != "error"]
    assert res.exit_code == min(len(failed), 100) != 0
    assert {Path(r["file"]).name for r in out} == {p.name for p in bad}
    for r in failed:
        assert r["file"] in r["error"], r
        assert "\n" not in r["error"] and r["call_id"] is None and r["cues"] == []
    assert snapshot(engine) == before


def test_missing_file_and_directory_are_errors(tmp_path, good_db, kit):
    _, engine, before = good_db
    opts = ingest.IngestOptions(account_id=ACCOUNT)
    folder = tmp_path / "empty dir.wav"
    folder.mkdir()
    for path in (tmp_path / "nope.wav", folder):
        r = ingest.ingest_file(engine, path, kit, opts)
        assert r.status == "error" and str(path) in r.error and "\n" not in r.error
    assert snapshot(engine) == before


def test_good_audio_under_odd_names_is_stored(tmp_path, kit, monkeypatch):
    """A valid recording named with a leading dash, quotes and unicode is ingested, not refused."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    clip = make_clips(tmp_path / "src", 1, base=6.0)[0]
    odd = tmp_path / "-call 'ü' \"1\".ogg"
    shutil.copy(clip, odd)
    monkeypatch.chdir(tmp_path)
    r = ingest.ingest_file(engine, Path(odd.name), kit, ingest.IngestOptions(account_id=ACCOUNT))
    assert r.status == "ok", r.error
    assert r.file == odd.name
    engine.dispose()


# --- bad CRM exports ---------------------------------------------------------------------------

ORDERS = "account_id,date,amount,invoice_id\n"
BAD_ROW_CSVS = {  # name → (kind, content): every data row is bad
    "bad_dates.csv": ("orders", ORDERS + "ACC-1003,2024-13-45,10,I1\nACC-1003,yesterday,10,I2\n"
                                "ACC-1003,31/31/2024,10,I3\nACC-1003,,10,I4\n"),
    "bad_amounts.csv": ("orders", ORDERS + "ACC-1003,2024-01-02,abc,I5\nACC-1003,2024-01-03,twelve,I6\n"
                                  "ACC-1003,2024-01-04,N/A?,I7\n"),
    "no_account.csv": ("orders", ORDERS + ",2024-01-02,10,I8\n  ,2024-01-03,11,I9\n"),
    "bad_activity.csv": ("activities", "account_id,date,type\nACC-1003,not a date,call\n,2024-01-01,call\n"),
    "bad_support.csv": ("support", "account_id,case_id,opened,closed\nACC-1003,C1,2024-02-30,\n"),
    "bad_contacts.csv": ("contacts", "account_id,name,email\n,Nobody,no@example.com\n"),
}
UNUSABLE_CSVS = {  # name → (kind, bytes): the file as a whole cannot be imported
    "missing_columns.csv": ("orders", b"account,when\nACC-1003,2024-01-01\n"),
    "only_header_wrong.csv": ("accounts", b"foo,bar,baz\n"),
    "empty.csv": ("orders", b""),
    "blank lines.csv": ("orders", b"\n\n\n"),
    # a UTF-16 export is read (tests/test_crm_parsing.py); one cut mid-character is not
    "utf16 cut.csv": ("orders", "account_id,date,amount\nACC-1003,2024-01-01,5\n".encode("utf-16") + b"\x00"),
    "unknown kind.csv": ("invoices", b"account_id,date,amount\nACC-1003,2024-01-01,5\n"),
    "ascii junk.csv": ("orders", bytes(range(0x20, 0x7f)) * 3 + b"\x00\x01\x02"),
    "semi;colon name.csv": ("orders", b"x\n1\n"),
}
BINARY_CSVS = {  # random bytes; cp1252 cannot decode 0x81/0x8d/0x8f/0x90/0x9d
    f"binary_{i}.csv": ("orders", random.Random(i).randbytes(2000) + b"\x81\x8f") for i in range(4)
}


@pytest.mark.parametrize("name", sorted(BAD_ROW_CSVS))
def test_crm_csv_with_only_bad_rows(tmp_path, good_db, cli, name):
    url, engine, before = good_db
    kind, content = BAD_ROW_CSVS[name]
    path = tmp_path / name
    path.write_text(content)
    n_rows = content.count("\n") - 1

    res = cli("crm", "import", path, "--kind", kind, "--db", url, "--json")

    no_traceback(res)
    assert snapshot(engine) == before
    if not res.stdout.strip():  # the whole file was refused, with one line naming it
        assert res.exit_code == 1 and name in res.stderr
        return
    # every bad row is reported by line, and the exit code counts them (like ingest's)
    report = json.loads(res.stdout)
    assert len(report["bad_rows"]) == n_rows, report
    assert {b["line"] for b in report["bad_rows"]} == set(range(2, n_rows + 2))
    assert res.exit_code == min(n_rows, 100)


@pytest.mark.parametrize("name", sorted(UNUSABLE_CSVS) + sorted(BINARY_CSVS))
def test_crm_unusable_csv_is_one_line_error(tmp_path, good_db, cli, monkeypatch, request, name):
    url, engine, before = good_db
    kind, content = {**UNUSABLE_CSVS, **BINARY_CSVS}[name]
    (tmp_path / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)

    res = cli("crm", "import", name, "--kind", kind, "--db", url)

    no_traceback(res)
    assert res.exit_code != 0
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and (name in errors[0] or kind in errors[0]), res.stderr
    assert snapshot(engine) == before


# --- bad rule files ----------------------------------------------------------------------------

GOOD_RULE = """rules:
  - name: demo.rule
    type: keyword
    label: pricing_request
    version: 1
    description: asks for a price
    lang: en
    phrases: [discount]
"""
BAD_RULES = {
    "not_yaml.yaml": "rules: [unclosed\n  - name: x\n",
    "tabs.yaml": "rules:\n\t- name: x\n",
    "top_list.yaml": "- name: x\n",
    "scalar.yaml": "just a string\n",
    "empty.yaml": "",
    "no_rules_key.yaml": "rulez: []\n",
    "bad_label.yaml": GOOD_RULE.replace("pricing_request", "gossip"),
    "bad_version.yaml": GOOD_RULE.replace("version: 1", "version: 0"),
    "text_version.yaml": GOOD_RULE.replace("version: 1", "version: one"),
    "bad_type.yaml": GOOD_RULE.replace("type: keyword", "type: regex"),
    "bad_lang.yaml": GOOD_RULE.replace("lang: en", "lang: xx"),
    "no_phrases.yaml": GOOD_RULE.replace("    phrases: [discount]\n", ""),
    "unknown_field.yaml": GOOD_RULE + "    colour: red\n",
    "bad_name.yaml": GOOD_RULE.replace("demo.rule", "demo rule!"),
    "dup_key.yaml": GOOD_RULE + "    version: 2\n",
    "bad_pattern.yaml": GOOD_RULE + "    patterns:\n      - [{NOT_AN_ATTR: x}]\n",
    "weight.yaml": GOOD_RULE.replace("lang: en", "lang: en\n    weight: 99"),
    "few_examples.yaml": "rules:\n  - name: e.r\n    type: embedding\n    label: org_change\n    version: 1\n"
                         "    description: d\n    examples: [a, b]\n    threshold: 0.5\n",
    "latin1.yaml": "# caf\xe9\n" + GOOD_RULE,  # written as latin-1 below
    "binary.yaml": "",  # random bytes below
}


def test_rules_check_names_every_bad_file(tmp_path, cli):
    folder = tmp_path / "rules" / "cues"
    folder.mkdir(parents=True)
    for name, body in BAD_RULES.items():
        path = folder / name
        if name == "latin1.yaml":
            path.write_bytes(body.encode("latin-1"))
        elif name == "binary.yaml":
            path.write_bytes(random.Random(7).randbytes(3000))
        else:
            path.write_text(body)
    (folder / "good.yaml").write_text(GOOD_RULE)

    res = cli("rules", "check", tmp_path / "rules")

    no_traceback(res)
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    crosses = [ln for ln in lines if ln.startswith("✗")]
    assert len(crosses) == len(BAD_RULES), res.stdout
    for name in BAD_RULES:
        assert sum(name in ln for ln in crosses) == 1, (name, res.stdout)
    assert "good.yaml" in res.stdout.replace("\n", "") and not any("good.yaml" in ln for ln in crosses)
