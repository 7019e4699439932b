"""The manager's rules page: every rule with its hits and measured precision, a form per rule
with a live preview, saving as a new version of the YAML file, history with diffs, rollback.

- `/rules`: each rule's cues in the last 30 days and its precision from managers' verdicts
  (`/review`, `churnwatch rules review`).
- `/rules/{name}`: the form of the rule's kind (keyword, embedding, learned), errors at the
  field; while typing, htmx posts the draft to `/rules/{name}/preview`, which shows the stored
  customer lines of the last N days that the draft would now flag or stop flagging (matched words
  highlighted) and its precision and recall on the labeled example bank in `rules/examples/`.
- Saving writes the file (the rule's version one up, the rest of the file as it was), records
  the new text with author and message in the history (pipeline.store.audit.RuleFileVersion) and
  in the audit trail; the detector reads the file at its next load. Rolling back writes an older
  version's text as a new version, so nothing in the history is ever lost.
"""

from __future__ import annotations

import difflib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select

from pipeline import store
from pipeline.cues.rule_files import EmbeddingRule, KeywordRule, LearnedRule, load_pack
from pipeline.errors import RuleError
from pipeline.web.i18n import Translator
from pipeline.web.pages import rule_editing as editing
from pipeline.web.pages.common import check_csrf, form_text, page_caller, render, require

router = APIRouter()
HIT_DAYS = 30
PREVIEW_DAYS = 30
MAX_PREVIEW_LINES = 5000
EDITORS = ("manager", "admin")


class RuleModels:
    """spaCy pipelines, the sentence encoder and the learned model, each loaded on first use and
    kept for the life of the process (one copy per process)."""

    def __init__(self, settings):
        self.settings = settings
        self._nlp: dict = {}
        self._embedder = None
        self._learned = None
        from pipeline.cues.embeddings import InMemoryEmbeddingCache

        self.cache = InMemoryEmbeddingCache()

    def need(self, rule) -> None:
        from pipeline.cues.languages import load_nlp

        langs = [rule.lang] if isinstance(rule, KeywordRule) else []
        for lang in langs:
            if lang not in self._nlp:
                self._nlp.update(load_nlp([lang]))
        if isinstance(rule, EmbeddingRule) and self._embedder is None:
            from pipeline.cues.embeddings import load_embedder

            self._embedder = load_embedder(name=self.settings.embedding_model)
        if isinstance(rule, LearnedRule) and self._learned is None:
            from pipeline.cues.learned import load_learned
            from pipeline.cues.rule_files import RulePack

            self._learned = load_learned(RulePack(rules=[rule]), self.settings.models_dir / "cues")

    @property
    def nlp(self):
        return self._nlp

    @property
    def embedder(self):
        return self._embedder

    @property
    def learned(self):
        return self._learned


def _models(request: Request) -> RuleModels:
    if getattr(request.app.state, "rule_models", None) is None:
        request.app.state.rule_models = RuleModels(request.app.state.settings)
    return request.app.state.rule_models


def _rules_dir(request: Request) -> Path:
    return Path(request.app.state.settings.rules_dir)


def _pack(request: Request):
    try:
        return load_pack(_rules_dir(request))
    except RuleError as e:
        raise HTTPException(400, Translator("en")("The rule files cannot be read: {error}", error=str(e))) from None


def _find(pack, name: str, t: Translator):
    for path in pack.files:
        for rule in editing.load_rule_file(path):
            if rule.name == name:
                return path, rule
    raise HTTPException(404, t("No rule named {name}.", name=name))


def _relative(request: Request, path: Path) -> str:
    return path.resolve().relative_to(_rules_dir(request).resolve()).as_posix()


def _stats(session, since: datetime) -> dict[str, dict]:
    hits = dict(session.execute(select(store.Cue.rule_name, func.count(store.Cue.id))
                                .where(store.Cue.created_at >= since).group_by(store.Cue.rule_name)).all())
    marks: dict[str, dict[str, int]] = {}
    for name, verdict, n in session.execute(
            select(store.Cue.rule_name, store.CueVerdict.verdict, func.count(store.CueVerdict.id))
            .join(store.CueVerdict, store.CueVerdict.cue_id == store.Cue.id)
            .group_by(store.Cue.rule_name, store.CueVerdict.verdict)):
        marks.setdefault(name, {})[verdict] = n
    out = {}
    for name in set(hits) | set(marks):
        right, wrong = marks.get(name, {}).get("right", 0), marks.get(name, {}).get("wrong", 0)
        out[name] = {"hits": hits.get(name, 0), "right": right, "wrong": wrong,
                     "precision": right / (right + wrong) if right + wrong else None}
    return out


@router.get("/rules")
def rules_page(request: Request):
    who = page_caller(request)
    require(who, *EDITORS)
    pack = _pack(request)
    since = datetime.now(timezone.utc) - timedelta(days=HIT_DAYS)
    with store.session_scope(request.app.state.engine) as session:
        stats = _stats(session, since)
    by_path = {}
    for path in pack.files:
        for rule in editing.load_rule_file(path):
            by_path.setdefault(_relative(request, path), []).append(
                {"name": rule.name, "kind": rule.type, "label": rule.label, "version": rule.version,
                 "lang": getattr(rule, "lang", None) or ", ".join(getattr(rule, "langs", []) or []),
                 "description": rule.description, **stats.get(rule.name, {"hits": 0, "precision": None,
                                                                          "right": 0, "wrong": 0})})
    return render(request, who, "rules.html", files=by_path, days=HIT_DAYS)


def _history(session, rel: str) -> list[dict]:
    versions = store.rule_file_versions(session, rel)
    out = []
    for i, v in enumerate(versions):
        older = versions[i + 1] if i + 1 < len(versions) else None
        diff = list(difflib.unified_diff((older.content if older else "").splitlines(), v.content.splitlines(),
                                         f"version {older.version}" if older else "", f"version {v.version}",
                                         lineterm="", n=2)) if older else []
        out.append({"version": v.version, "author": v.author, "message": v.message, "at": v.created_at,
                    "diff": diff, "latest": i == 0})
    return out


def _edit_page(request, who, path, rule, draft=None, error=None, saved_note=None, status_code=200):
    rel = _relative(request, path)
    with store.session_scope(request.app.state.engine) as session:
        history = _history(session, rel)
    values = draft.data if draft is not None else editing.form_values(rule)
    errors = draft.errors if draft is not None else {}
    return render(request, who, "rule_edit.html", status_code=status_code, rule=rule, values=values, errors=errors,
                  file=rel, history=history, error=error, saved_note=saved_note, days=PREVIEW_DAYS,
                  patterns=len(getattr(rule, "patterns", []) or []))


@router.get("/rules/{name}")
def rule_page(name: str, request: Request, saved: int | None = None):
    who = page_caller(request)
    require(who, *EDITORS)
    t = Translator(who.lang)
    path, rule = _find(_pack(request), name, t)
    note = t("Saved as version {v} of the rule.", v=rule.version) if saved else None
    return _edit_page(request, who, path, rule, saved_note=note)


def _stored_lines(session, rule, days: int) -> list[editing.Line]:
    since = datetime.now(timezone.utc) - timedelta(days=days)
    query = (select(store.Segment.text, store.Segment.speaker, store.Segment.start, store.Call.id, store.Call.language)
             .join(store.Call, store.Call.id == store.Segment.call_id)
             .where(store.Call.call_date >= since).order_by(store.Call.call_date.desc(), store.Segment.idx)
             .limit(MAX_PREVIEW_LINES))
    if rule.speaker != "any":
        query = query.where(store.Segment.speaker == rule.speaker)
    return [editing.Line(text=text, lang=(lang or "en").split("-")[0], speaker=speaker or "customer", call_id=call_id,
                         start=start) for text, speaker, start, call_id, lang in session.execute(query)]


def _bank_lines(request: Request, rule) -> list[editing.Line]:
    from pipeline.cues.examples import load_bank

    folder = _rules_dir(request) / "examples"
    if not folder.is_dir():
        return []
    key = ("bank", max((p.stat().st_mtime_ns for p in folder.glob("*.txt")), default=0))
    cached = getattr(request.app.state, "bank_cache", None)
    if cached is None or cached[0] != key:
        bank = load_bank(folder)
        cached = (key, [editing.Line(text=e.text, lang=e.lang, label=e.labels[0] if e.labels else "")
                        for e in bank.examples if e.context is None])
        request.app.state.bank_cache = cached
    langs = {rule.lang} if isinstance(rule, KeywordRule) else set(getattr(rule, "langs", ["en"]))
    return [ln for ln in cached[1] if ln.lang in langs]


async def _posted_draft(request: Request, name: str):
    """The editor who posted, the form, their translator, the rule's file and saved rule, and the
    draft the form makes of it (preview and save read a post the same way)."""
    who = page_caller(request)
    require(who, *EDITORS)
    form = await request.form()
    check_csrf(request, who, form)
    t = Translator(who.lang)
    path, rule = _find(_pack(request), name, t)
    draft = editing.make_draft(rule, {k: v for k, v in form.items() if isinstance(v, str)})
    return who, form, t, path, rule, draft


@router.post("/rules/{name}/preview")
async def rule_preview(name: str, request: Request):
    who, form, t, _, rule, draft = await _posted_draft(request, name)
    if draft.rule is None:
        return render(request, who, "rule_preview.html", fragment=True, preview=None, errors=draft.errors)
    try:
        days = max(1, min(int(form_text(form, "days") or PREVIEW_DAYS), 365))
    except ValueError:
        days = PREVIEW_DAYS
    models = _models(request)
    models.need(rule)
    with store.session_scope(request.app.state.engine) as session:
        stored = _stored_lines(session, rule, days)
    result = editing.preview(rule, draft.rule, stored, _bank_lines(request, rule), models)
    return render(request, who, "rule_preview.html", fragment=True, preview=result, errors={}, days=days,
                  rule=rule)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@router.post("/rules/{name}")
async def rule_save(name: str, request: Request):
    who, form, t, path, rule, draft = await _posted_draft(request, name)
    message = form_text(form, "message")
    if not message:
        draft.errors["message"] = t("Say in a few words what you changed and why.")
    if draft.rule is None or draft.errors:
        return _edit_page(request, who, path, rule, draft=draft, status_code=422,
                          error=t("The rule was not saved; see the fields marked below."))
    old = path.read_text(encoding="utf-8")
    new = editing.new_file_text(path, old, rule, draft.rule)
    if new == old:
        return _edit_page(request, who, path, rule, draft=draft, error=t("Nothing changed, so nothing was saved."))
    try:
        editing.check_text(path, new)
        _check_pack_with(request, path, new)
    except RuleError as e:
        return _edit_page(request, who, path, rule, draft=draft, status_code=422, error=str(e))
    rel = _relative(request, path)
    with store.session_scope(request.app.state.engine) as session:
        version = store.save_rule_file_version(session, rel, old, new, author=who.email, message=message)
        store.audit(session, "rule_saved", user_id=who.id, actor=who.email, target=f"{rel}:{name}",
                    file_version=version.version, message=message)
        _write(path, new)
    return RedirectResponse(f"/rules/{name}?saved=1", status_code=303)


def _check_pack_with(request: Request, path: Path, text: str) -> None:
    """The whole pack must still load with the new file (unique names across files)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cues"
        shutil.copytree(path.parent, folder)
        (folder / path.name).write_text(text, encoding="utf-8")
        try:
            load_pack(Path(tmp))
        except RuleError as e:
            raise RuleError(path, str(e).replace(str(folder), str(path.parent))) from None


@router.post("/rules/{name}/rollback/{version}")
async def rule_rollback(name: str, version: int, request: Request):
    who = page_caller(request)
    require(who, *EDITORS)
    check_csrf(request, who, await request.form())
    t = Translator(who.lang)
    path, rule = _find(_pack(request), name, t)
    rel = _relative(request, path)
    with store.session_scope(request.app.state.engine) as session:
        old_version = store.rule_file_version(session, rel, version)
        if old_version is None:
            raise HTTPException(404, t("No version {v} of {file}.", v=version, file=rel))
        current = path.read_text(encoding="utf-8")
        try:
            editing.check_text(path, old_version.content)
        except RuleError as e:
            return _edit_page(request, who, path, rule, status_code=422, error=str(e))
        row = store.save_rule_file_version(session, rel, current, old_version.content, author=who.email,
                                           message=t("Rolled back to version {v}.", v=version))
        store.audit(session, "rule_rolled_back", user_id=who.id, actor=who.email, target=rel, to_version=version,
                    file_version=row.version)
        _write(path, old_version.content)
    return RedirectResponse(f"/rules/{name}?saved=1", status_code=303)
