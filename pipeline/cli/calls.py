"""`churnwatch transcribe` and `churnwatch ingest`: recordings in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    app,
    console,
    err_console,
    fail,
    get_settings,
    parse_date_option,
    print_json,
)


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
    from pipeline.speech.transcribe import TranscribeOptions, format_transcript, load_asr, transcribe, transcript_json

    if sum([json_out, srt, vtt, txt]) > 1:
        fail("Choose one output format: --json, --srt, --vtt or --txt.")
    if file.is_dir():
        fail(f"{file}: is a folder; pass one recording (churnwatch ingest takes folders).")
    if problem := _unreadable(file):  # before the model loads
        fail(problem)
    settings = get_settings(engine=engine, rep_channel=rep_channel)
    options = TranscribeOptions.from_settings(settings, model=model, language=language)
    asr = load_asr(options, settings.models_dir)
    result = transcribe(file, asr)
    if json_out:
        print_json(transcript_json(result))
    elif srt or vtt or txt:
        sys.stdout.write(format_transcript(result, "srt" if srt else "vtt" if vtt else "txt") + "\n")
    else:
        console.print(f"[bold]{file}[/bold]: {result.duration:.0f} s, language {result.language}, "
                      f"{result.channel_layout}, {result.engine} {result.model}", highlight=False)
        from rich.markup import escape

        colors = {"rep": "cyan", "customer": "magenta"}
        for line, seg in zip(format_transcript(result, "txt").splitlines(), result.segments):
            console.print(f"[{colors.get(seg.speaker, 'white')}]{escape(line)}[/]", highlight=False)

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
    language: Annotated[Optional[str], typer.Option("--language", help="The calls' language code (en, de, ro, ko, ...); default: detected per call.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (parallel workers).")] = "local",
    workers: Annotated[int, typer.Option("--workers", help="Ray workers, each loading its models once.")] = 2,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: start a local one).")] = None,
    create_account: Annotated[bool, typer.Option("--create-account", help="Add the account if the CRM data does not have it yet (otherwise an unknown id is an error).")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Transcribe recordings, find churn cues, store them, re-score the account and plan reminders.

    A bad file is reported and skipped; the exit code is the number of files that failed (0 = all ok).
    The account must exist in the imported CRM data, unless --create-account is given.
    """
    from pipeline import store
    from pipeline.flow import executors as scale
    from pipeline.flow import ingest as ingest_mod
    from pipeline.store.database import check_writable

    # everything that can be checked is checked before the models load (the slow part)
    settings = get_settings(db, engine=engine_name, rep_channel=rep_channel)
    if executor not in ("local", "ray"):
        fail(f"Unknown executor {executor!r}. Choose local or ray.")
    files = _expand(paths)
    if not files:
        fail("No recordings given. Pass audio files or folders holding .wav/.mp3/.flac/.m4a/.ogg files.")
    if not account.strip():
        fail("--account is empty. Give the CRM account id the calls belong to, e.g. --account ACC-1003.")
    day = ingest_mod.check_call_date(parse_date_option(call_date, "--date"))
    from pipeline.speech.transcribe import check_language

    options = ingest_mod.IngestOptions(account_id=account, rep=rep, call_date=day,
                                       language=check_language(language, "--language"))
    engine = store.make_engine(settings.db_url)
    store.init_db(engine)
    check_writable(engine)
    _check_account(engine, account, create_account)
    unreadable = {i: ingest_mod.IngestResult(file=str(f), status="error", error=problem, account_id=account)
                  for i, f in enumerate(files) if (problem := _unreadable(f))}
    jobs = [(f, options) for i, f in enumerate(files) if i not in unreadable]
    results = scale.run_jobs(jobs, settings, executor=executor, workers=workers, address=address,
                             progress=not as_json) if jobs else []
    if unreadable:  # back in the order given
        ran = iter(results)
        results = [unreadable[i] if i in unreadable else next(ran) for i in range(len(files))]
    _report_ingest(results, as_json)
    failed = sum(r.status in ("error", "skipped") for r in results)
    raise typer.Exit(min(failed, 100))


def _unreadable(path: Path) -> str | None:
    """Why a recording cannot be read at all (so no model needs loading to say so), else None."""
    if path.is_dir():
        return f"{path}: a folder with no recordings in it (.wav, .mp3, .flac, .m4a, .ogg)."
    if not path.exists():
        return f"{path}: no such file."
    if not path.is_file():
        return f"{path}: not a file."
    return None


def _check_account(engine, account: str, create: bool) -> None:
    """Refuse an account id the CRM data does not hold (naming the closest ones), before any
    recording is read; --create-account adds it instead."""
    from pipeline import store
    from pipeline.store.lookups import find_account

    if not account.strip():
        fail("--account is empty. Give the CRM account id the calls belong to, e.g. --account ACC-1003.")
    with store.session_scope(engine) as session:
        found = find_account(session, account)
    if found.account is not None:
        return
    alike = next(((i, how) for i in found.closest if (how := _lookalike(account, i))), None)
    if alike:  # refused even with --create-account: a second account for one customer splits its history
        fail(f"No account {account!r} in the CRM data. The closest existing: {alike[0]}, and the id you gave "
             f"has {alike[1]}. Use --account {alike[0]}.")
    if create:
        return
    if not found.known:
        # no CRM data imported yet: nothing to check the id against (churnwatch crm import)
        err_console.print(f"[yellow]note:[/yellow] no CRM accounts are imported yet, so {account!r} cannot be "
                          "checked; it is added as a new account. Import them with: churnwatch crm import",
                          highlight=False, soft_wrap=True)
        return
    hint = f" The closest existing: {', '.join(found.closest)}." if found.closest else ""
    fail(f"No account {account!r} in the CRM data.{hint} Check the id, or add it as a new account with "
         "--create-account.")


# Characters typed for one another: (typed, meant) → how to say it
_LOOKALIKES = {("O", "0"): "a letter O for a zero", ("o", "0"): "a letter o for a zero",
               ("0", "O"): "a zero for a letter O", ("I", "1"): "a letter I for a one",
               ("l", "1"): "a letter l for a one", ("1", "I"): "a one for a letter I",
               ("1", "l"): "a one for a letter l"}


def _lookalike(typed: str, existing: str) -> str | None:
    """How `typed` differs from `existing` when it is the same id mistyped (O for 0, I for 1,
    spaces around it), else None. Case is not a typo here: some CRMs' ids differ only by case."""
    typed = typed.strip()
    if typed == existing:
        return "spaces around it"
    if len(typed) != len(existing):
        return None
    swaps = {_LOOKALIKES.get((a, b)) for a, b in zip(typed, existing) if a != b}
    return " and ".join(sorted(swaps)) if swaps and None not in swaps else None


def _report_ingest(results, as_json: bool) -> None:
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    for r in results:
        name = escape(Path(r.file).name)
        if r.status == "error":
            err_console.print(f"[red]✗ {name}[/red]: {escape(r.error or '')}", highlight=False)
            continue
        for warning in r.warnings:
            err_console.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False)
        if r.status == "skipped":
            err_console.print(f"[yellow]- {name}[/yellow]: not tried.", highlight=False)
            continue
        if r.status == "duplicate":
            console.print(f"[yellow]= {name}[/yellow]: already stored as call {r.call_id}; skipped.")
            continue
        console.print(f"[green]✓ {name}[/green] → call {r.call_id}, {len(r.cues)} cue(s)")
        for hint in r.hints:
            console.print(hint.get("text", ""), highlight=False)
    if any(r.status in ("error", "skipped") for r in results):
        err_console.print(escape(_ingest_summary(results)), highlight=False, soft_wrap=True)


def _ingest_summary(results) -> str:
    """One line on what a batch stored and what it did not, true for any mix of outcomes."""
    n = len(results)
    stored = sum(r.status == "ok" for r in results)
    dup = sum(r.status == "duplicate" for r in results)
    bad = sum(r.status == "error" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    stop = next((r for r in results if r.stops_batch), None)
    if n == 1 and bad:
        line = "The file failed; nothing was stored."
    elif bad == n:
        line = f"All {n} files failed; nothing was stored."
    else:
        done = [f"{stored} stored"] + ([f"{dup} already stored"] if dup else [])
        line = f"{bad} of {n} files failed; " + ", ".join(done) + "."
    if stop is not None:  # its error, printed above, names the cause
        line += (f" The batch stopped at {Path(stop.file).name}, as the database cannot be written"
                 + (f"; {skipped} file(s) not tried" if skipped else "")
                 + ". Run the same ingest again once that is fixed: the stored files are skipped as duplicates.")
    return line
