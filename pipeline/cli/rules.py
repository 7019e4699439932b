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
    err_console,
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


def _rule_models(pack, langs, use_embeddings: bool = True, use_learned: bool = True):
    """The spaCy pipelines for `langs`; the embedder if the pack has embedding rules; the learned
    cue model (and its encoder) if it has learned rules. Nothing the pack does not use is loaded."""
    from pipeline.cues import EmbeddingRule, load_embedder
    from pipeline.cues.languages import LANGS, load_nlp
    from pipeline.cues.learned import load_learned

    nlp = load_nlp([lang for lang in langs if lang in LANGS])
    needs = use_embeddings and any(isinstance(r, EmbeddingRule) for r in pack.rules)
    embedder = load_embedder(name=get_settings().embedding_model) if needs else None
    learned = load_learned(pack, get_settings().models_dir / "cues") if use_learned else None
    return nlp, embedder, learned


def _load_pack(rules: Path | None):
    from pipeline.cues.rule_files import load_pack

    return load_pack(rules or get_settings().rules_dir)


@rules_app.command("check")
def rules_check(
    directory: Annotated[Optional[Path], typer.Argument(help="Folder of rule files (default: rules/).")] = None,
    as_json: JsonOption = False,
):
    """Validate everything a manager edits in rules/: cue types, cue rules, the example bank,
    risk.yaml, reminders.yaml and funnel.yaml. A tick or a cross per file, then warnings;
    exit 1 if anything is invalid (what check passes, ingest and `rules test` accept)."""
    settings = get_settings()
    findings = check_all(directory or settings.rules_dir, settings.models_dir)
    errors = [f for f in findings if f.message and not f.warning]
    warnings = [f for f in findings if f.warning]
    paths = list(dict.fromkeys(f.path for f in findings if not f.warning))
    if as_json:
        print_json({"valid": not errors,
                    "files": [{"path": str(p), "errors": [f.message for f in errors if f.path == p]} for p in paths],
                    "warnings": [f.message for f in warnings]})
    else:
        for path in paths:
            mine = [f for f in errors if f.path == path]
            if not mine:
                console.print(f"[green]✓[/green] {path}", highlight=False)
            for f in mine:
                console.print(f"[red]✗[/red] {f.message}", highlight=False, soft_wrap=True)
        for f in warnings:
            console.print(f"[yellow]![/yellow] {f.message}", highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(1)


def check_all(rules_dir: Path, models_dir: Path | None):
    """The findings of `rules check`: the cue side (pipeline.cues.pack_check), then risk.yaml,
    reminders.yaml and funnel.yaml, each read by the loader ingest uses."""
    from pipeline.cues.cue_types import load_cue_types
    from pipeline.cues.pack_check import Finding, check_cues
    from pipeline.cues.rule_files import rule_files
    from pipeline.errors import ChurnwatchError, RuleError
    from pipeline.reminders.policies import load_policies
    from pipeline.risk.score import load_risk_model

    rules_dir = Path(rules_dir)
    findings = check_cues(rules_dir, models_dir)
    folder, _ = rule_files(rules_dir)
    pack_dir = folder.parent if folder.name == "cues" else folder
    try:
        types = load_cue_types(pack_dir)
    except RuleError:  # reported by check_cues; check the rest against the default types
        from pipeline.cues.cue_types import default_cue_types

        types = default_cue_types()

    def run(path: Path, load):
        if not path.is_file():
            findings.append(Finding(path, f"{path}: not found, so not checked; ingest needs it in the rules "
                                          "folder it reads.", warning=True))
            return None
        try:
            result = load(path)
        except RuleError as e:
            findings.append(Finding(Path(e.path), str(e)))
            return None
        except ChurnwatchError as e:
            findings.append(Finding(path, f"{path}: {e}"))
            return None
        findings.append(Finding(path))
        return result

    model = run(pack_dir / "risk.yaml", lambda p: load_risk_model(pack_dir, models_dir or p.parent, types))
    for warning in (model.meta.get("warnings", []) if model is not None else []):
        findings.append(Finding(pack_dir / "risk.yaml", warning, warning=True))
    policies = run(pack_dir / "reminders.yaml", lambda p: load_policies(p, cue_types=types))
    for warning in (policies.warnings if policies is not None else []):
        findings.append(Finding(pack_dir / "reminders.yaml", warning, warning=True))
    if (pack_dir / "funnel.yaml").is_file():
        try:
            from pipeline.funnel.stages import load_funnel
        except ImportError:
            load_funnel = None
        if load_funnel is not None:
            run(pack_dir / "funnel.yaml", load_funnel)
    return findings


KindOption = Annotated[
    Optional[list[str]],
    typer.Option("--kind", help="Only rules of this kind: keyword, embedding or learned (repeatable)."),
]


def _only_kinds(pack, kinds):
    if not kinds:
        return pack
    bad = [k for k in kinds if k not in ("keyword", "embedding", "learned")]
    if bad:
        fail(f"--kind {bad[0]!r} is not a rule kind; use keyword, embedding or learned.")
    from dataclasses import replace

    return replace(pack, rules=[r for r in pack.rules if r.type in kinds], compiled={})


def _evaluate(pack, rows, nlp, embedder, learned):
    """The pack's report on labeled lines: per label (one cue per label) and per rule (every rule)."""
    from dataclasses import replace

    from pipeline.cues.detect import DetectOptions, Utterance, detect_utterances
    from pipeline.cues.embeddings import InMemoryEmbeddingCache
    from pipeline.cues.evaluation import score_rules
    from pipeline.cues.rule_files import score_predictions

    utts = [Utterance(r["text"], r["speaker"], r["lang"], context=r.get("context")) for r in rows]
    every = detect_utterances(utts, pack, nlp, embedder, InMemoryEmbeddingCache(),
                              replace(DetectOptions(), one_cue_per_label=False), learned)
    report = score_predictions(rows, [{c.label for c in cues} for cues in every], pack.cue_labels)
    report["per_rule"] = score_rules(rows, every, [r.name for r in pack.rules])
    return report


def _print_report(report, title: str, per_rule: bool = True) -> None:
    table = Table(title=title)
    for col in ("label", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, m in report["per_label"].items():
        table.add_row(label, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"]))
    console.print(table)
    console.print(f"macro-F1 {report['macro_f1']:.3f}   false alarms on cue-free lines "
                  f"{report['false_alarm_rate']:.1%}")
    if per_rule:
        rules = Table(title="Each rule on its own")
        for col in ("rule", "hits", "right", "false alarms", "precision", "found by no other rule"):
            rules.add_column(col, justify="left" if col == "rule" else "right")
        for r in report["per_rule"]:
            prec = "–" if r["precision"] is None else f"{r['precision']:.2f}"
            rules.add_row(r["rule"], str(r["hits"]), str(r["right"]), str(r["false_alarms"]), prec,
                          str(r["only_this_rule"]))
        console.print(rules)


@rules_app.command("test")
def rules_test(
    file: Annotated[Path, typer.Argument(help='Labeled lines: one {"id","text","speaker","lang","labels"} per line.')],
    rules: RulesDirOption = None,
    no_embeddings: Annotated[bool, typer.Option("--no-embeddings", help="Skip embedding and learned rules.")] = False,
    kind: KindOption = None,
    as_json: JsonOption = False,
):
    """Precision, recall and F1 per label, macro-F1, the false-alarm rate on cue-free lines, and
    each rule's own hits, precision and false alarms."""
    from pipeline.cues.rule_files import read_labeled

    pack = _only_kinds(_load_pack(rules), kind)
    rows = read_labeled(file, pack.cue_labels)
    nlp, embedder, learned = _rule_models(pack, {r["lang"] for r in rows}, not no_embeddings, not no_embeddings)
    report = _evaluate(pack, rows, nlp, embedder, learned)
    if as_json:
        print_json(report)
        return
    _print_report(report, f"{file} ({len(rows)} lines)")


@rules_app.command("fit")
def rules_fit(
    rules: RulesDirOption = None,
    test: Annotated[Optional[list[Path]], typer.Option("--test", help="Labeled file to score before and after the refit (repeatable).")] = None,
    no_verdicts: Annotated[bool, typer.Option("--no-verdicts", help="Learn from the example bank only, not from managers' verdicts.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
):
    """Refit the learned cue models from rules/examples/ and the verdicts of `rules review`."""
    from pipeline import store
    from pipeline.cues.embeddings import load_embedder
    from pipeline.cues.examples import load_bank
    from pipeline.cues.detect import LearnedCues
    from pipeline.cues.learned import cache_from_model, examples_from_verdicts, fit_model, load_model, save_model
    from pipeline.cues.rule_files import LearnedRule, read_labeled
    from pipeline.errors import ChurnwatchError

    settings = get_settings(db)
    pack = _load_pack(rules)
    learned_rules = [r for r in pack.rules if isinstance(r, LearnedRule)]
    if not learned_rules:
        fail("The rule pack has no learned rules (type: learned); nothing to fit.")
    folder = settings.models_dir / "cues"
    labels = sorted({r.label for r in learned_rules})
    bank = load_bank(pack.folder / "examples", set(pack.cue_labels))
    verdicts = []
    if not no_verdicts:
        engine = store.make_engine(settings.db_url)
        if store.current_revision(engine) is not None:
            store.init_db(engine)  # migrate: the verdicts table may be new
            with store.session_scope(engine) as session:
                verdicts = examples_from_verdicts(store.all_verdicts(session))
    rows = {str(f): read_labeled(f, pack.cue_labels) for f in (test or [])}
    try:
        old = load_model(folder)
    except ChurnwatchError:
        old = None
    embedder = load_embedder(name=learned_rules[0].model)
    if rows:  # the same spaCy pipelines and embedding-rule encoder score before and after
        nlp, emb_rules, _ = _rule_models(pack, {r["lang"] for rs in rows.values() for r in rs}, True, False)
    before = {}
    if old is not None and old.encoder == embedder.name and rows:
        before = {f: _evaluate(pack, rs, nlp, emb_rules, LearnedCues(old, embedder)) for f, rs in rows.items()}
    cache = cache_from_model(old) if old is not None and old.encoder == embedder.name else None
    model = fit_model(bank, embedder, labels, cache, verdicts,
                      progress=None if as_json else lambda m: err_console.print(f"  {m}", highlight=False))
    path = save_model(model, folder)
    after = {f: _evaluate(pack, rs, nlp, emb_rules, LearnedCues(model, embedder)) for f, rs in rows.items()}
    summary = {"model": str(path), "version": model.version, "encoder": model.encoder,
               "bank_examples": len(bank.examples), "verdicts": len(verdicts),
               "labels": {k: {"threshold": v["threshold"], "cv": v["cv"], "examples": v["examples"]}
                          for k, v in model.labels.items()},
               "tests": {f: {"before": _brief(before.get(f)), "after": _brief(after[f])} for f in after}}
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"Learned cue model {model.version} ({len(bank.examples)} examples, {len(verdicts)} verdicts)")
    for col in ("cue", "examples", "threshold", "precision*", "recall*", "F1*"):
        table.add_column(col, justify="left" if col == "cue" else "right")
    for label, h in model.labels.items():
        cv = h["cv"]
        table.add_row(label, str(h["examples"]), f"{h['threshold']:.2f}", f"{cv['precision']:.2f}",
                      f"{cv['recall']:.2f}", f"{cv['f1']:.2f}")
    console.print(table)
    console.print("* on examples the model did not see while fitting (5-fold cross-validation over the bank)")
    for f, result in summary["tests"].items():
        b, a = result["before"], result["after"]
        was = f"{b['macro_f1']:.3f}, {b['false_alarm_rate']:.1%} false alarms → " if b else ""
        console.print(f"{f}: macro-F1 {was}{a['macro_f1']:.3f}, {a['false_alarm_rate']:.1%} false alarms")
    console.print(f"Saved {path}.")


def _brief(report):
    if report is None:
        return None
    return {"macro_f1": report["macro_f1"], "false_alarm_rate": report["false_alarm_rate"],
            "per_label_f1": {k: v["f1"] for k, v in report["per_label"].items()}}


@rules_app.command("review")
def rules_review(
    right: Annotated[Optional[list[int]], typer.Option("--right", help="Mark this stored cue right (repeatable).")] = None,
    wrong: Annotated[Optional[list[int]], typer.Option("--wrong", help="Mark this stored cue wrong (repeatable).")] = None,
    missed: Annotated[Optional[str], typer.Option("--missed", help="A customer line the rules should have flagged (with --label).")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="The cue type: of the --missed line, or to list only this type.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the --missed line.")] = "en",
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Who judges (kept with each verdict).")] = None,
    all_cues: Annotated[bool, typer.Option("--all", help="List reviewed cues too, with their verdict.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many cues to list.")] = 30,
    db: DbOption = None,
    as_json: JsonOption = False,
):
    """List stored cues to judge; mark them right or wrong, or add a line the rules missed.
    `churnwatch rules fit` then learns from the verdicts."""
    from pipeline import store

    pack = _load_pack(None)
    if missed is not None and not label:
        fail("--missed needs --label: the cue type the line should have raised.")
    if label and label not in pack.cue_labels:
        fail(f"--label {label!r} is not a cue type of the rule pack; use one of: {', '.join(pack.cue_labels)}.")
    settings, engine = open_store(db, create=True)
    done = []
    with store.session_scope(engine) as session:
        for verdict, ids in (("right", right or []), ("wrong", wrong or [])):
            for cue_id in ids:
                row = store.mark_cue(session, cue_id, verdict, reviewer)
                done.append({"cue_id": cue_id, "verdict": verdict, "label": row.label, "text": row.text})
        if missed is not None:
            row = store.add_missed(session, missed, label, lang, reviewer=reviewer)
            done.append({"cue_id": None, "verdict": "missed", "label": label, "text": row.text})
        items = [] if done else store.cues_for_review(session, label=label, include_reviewed=all_cues, limit=limit)
    if done:
        if as_json:
            print_json({"recorded": done})
            return
        for d in done:
            console.print(f"[green]✓[/green] {d['verdict']}: {d['label']}: \"{d['text']}\"", highlight=False)
        console.print("Refit the learned cue models with: churnwatch rules fit")
        return
    if as_json:
        print_json({"cues": [{**i.__dict__, "call_date": i.call_date.isoformat() if i.call_date else None}
                             for i in items]})
        return
    if not items:
        console.print("Nothing to review." + ("" if all_cues else " (--all lists cues already judged)"))
        return
    table = Table(title="Cues to review: mark with --right ID or --wrong ID")
    for col in ("id", "call", "account", "label", "rule", "quote", "verdict"):
        table.add_column(col, justify="right" if col in ("id", "call") else "left")
    for i in items:
        table.add_row(str(i.cue_id), str(i.call_id), i.account_id or "", i.label, f"{i.rule}@{i.rule_version}",
                      i.quote, i.verdict or "")
    console.print(table)


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
        nlp, embedder, learned = _rule_models(pack, {lang.split("-")[0] for lang in langs} or {"en"})
        cache = store.DbEmbeddingCache(session) if hasattr(store, "DbEmbeddingCache") else None
        rows = backtest(session, pack, nlp, embedder, cache, learned=learned)
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
    context: Annotated[Optional[str], typer.Option("--after", help="What the other side said just before (e.g. the rep's question).")] = None,
    rules: RulesDirOption = None,
    as_json: JsonOption = False,
):
    """The cues in one utterance, with the rule that fired and why (a learned cue with the
    training examples nearest to it)."""
    from pipeline.cues.detect import detect_text

    if speaker not in ("customer", "rep"):
        fail(f"--speaker {speaker!r} is not valid; use customer or rep.")
    pack = _load_pack(rules)
    nlp, embedder, learned = _rule_models(pack, [lang])
    from dataclasses import replace

    from pipeline.cues.detect import DetectOptions

    # every rule that fires, not only the strongest per cue type: this command explains the pack
    cues = detect_text(text, pack, nlp, speaker=speaker, lang=lang, embedder=embedder, learned=learned,
                       context=context, options=replace(DetectOptions(), one_cue_per_label=False))
    nearest = _nearest_examples(text, context, [c for c in cues if pack.by_name(c.rule).type == "learned"], learned)
    if as_json:
        print_json({"text": text, "speaker": speaker, "lang": lang, "context": context,
                    "cues": [{**c.to_dict(), "nearest_examples": nearest.get(c.rule, [])} for c in cues]})
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
    for rule, near in nearest.items():
        console.print(f"{rule} learned this from, among others:")
        for e in near:
            console.print(f"  {e['similarity']:.2f}  \"{e['text']}\"  ({e['source']})", highlight=False)


def _nearest_examples(text, context, fired, learned, k: int = 3) -> dict[str, list[dict]]:
    """For each cue of a learned rule: the training examples of its label nearest to the utterance."""
    from pipeline.cues.detect import DetectOptions, Utterance, reply_context
    from pipeline.cues.embeddings import encode
    from pipeline.types import model_input

    if learned is None or not fired:
        return {}
    ctx = reply_context(Utterance(text, context=context), DetectOptions())
    x = encode([model_input(text, ctx)], learned.embedder, None)[0]
    return {c.rule: learned.model.nearest(x, c.label, k) for c in fired}
