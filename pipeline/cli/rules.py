"""`churnwatch rules` and `churnwatch detect`: check, test and backtest the cue rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    app,
    console,
    fail,
    get_settings,
    open_store,
    print_json,
)

rules_app = typer.Typer(help="Check, test and backtest the cue rules in rules/.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

RulesDirOption = Annotated[
    Optional[Path],
    typer.Option("--rules", help="Folder of rule files (cues/*.yaml); default: the settings' rules_dir."),
]


def _rule_models(pack, langs, use_embeddings: bool = True):
    """Load the spaCy pipelines for `langs` and, if the pack has embedding rules, the embedder."""
    from pipeline.cues import EmbeddingRule, load_embedder
    from pipeline.cues.languages import LANGS, load_nlp

    nlp = load_nlp([lang for lang in langs if lang in LANGS])
    needs = use_embeddings and any(isinstance(r, EmbeddingRule) for r in pack.rules)
    return nlp, (load_embedder(name=get_settings().embedding_model) if needs else None)


def _load_pack(rules: Path | None):
    from pipeline.cues.rule_files import load_pack

    return load_pack(rules or get_settings().rules_dir)


@rules_app.command("check")
def rules_check(
    directory: Annotated[Optional[Path], typer.Argument(help="Folder of rule files (default: rules/).")] = None,
):
    """Validate every rule file: a tick or a cross per file; exit 1 if any is invalid."""
    from pipeline.cues.rule_files import check_dir

    results = check_dir(directory or get_settings().rules_dir)
    if not results:
        fail(f"No *.yaml rule files in {directory or get_settings().rules_dir}.")
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
    from pipeline.cues.detect import Utterance, detect_utterances
    from pipeline.cues.embeddings import InMemoryEmbeddingCache
    from pipeline.cues.rule_files import read_labeled, score_predictions

    pack = _load_pack(rules)
    rows = read_labeled(file)
    nlp, embedder = _rule_models(pack, {r["lang"] for r in rows}, not no_embeddings)
    found = detect_utterances([Utterance(r["text"], r["speaker"], r["lang"]) for r in rows],
                              pack, nlp, embedder, InMemoryEmbeddingCache())
    report = score_predictions(rows, [{c.label for c in cues} for cues in found])
    if as_json:
        print_json(report)
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
    from pipeline.cues.backtest import backtest

    pack = _load_pack(rules)
    settings, engine = open_store(db, create=True)
    with store.session_scope(engine) as session:
        langs = {lang or "en" for (lang,) in session.execute(select(store.Call.language))}
        nlp, embedder = _rule_models(pack, {lang.split("-")[0] for lang in langs} or {"en"})
        cache = store.DbEmbeddingCache(session) if hasattr(store, "DbEmbeddingCache") else None
        rows = backtest(session, pack, nlp, embedder, cache)
    if as_json:
        print_json({"rules": rows})
        return
    table = Table(title="Rule hits by account outcome")
    for col in ("rule", "version", "accounts hit", "in lost", "in kept", "lift"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for r in rows:
        lift = "–" if r["lift"] is None else f"{r['lift']:.2f}"
        table.add_row(r["rule"], str(r["version"]), str(r["accounts_hit"]), f"{r['hit_rate_lost']:.0%}",
                      f"{r['hit_rate_kept']:.0%}", lift)
    console.print(table)

@app.command("detect")
def detect_cmd(
    text: Annotated[str, typer.Option("--text", help="The utterance to read.")],
    speaker: Annotated[str, typer.Option("--speaker", help="Who said it: customer or rep.")] = "customer",
    lang: Annotated[str, typer.Option("--lang", help="Language code: en, de, ro or ko.")] = "en",
    rules: RulesDirOption = None,
    as_json: JsonOption = False,
):
    """The cues in one utterance, with the rule that fired and why."""
    from pipeline.cues.detect import detect_text

    if speaker not in ("customer", "rep"):
        fail(f"--speaker {speaker!r} is not valid; use customer or rep.")
    pack = _load_pack(rules)
    nlp, embedder = _rule_models(pack, [lang])
    cues = detect_text(text, pack, nlp, speaker=speaker, lang=lang, embedder=embedder)
    if as_json:
        print_json({"text": text, "speaker": speaker, "lang": lang, "cues": [c.to_dict() for c in cues]})
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
