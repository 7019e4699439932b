"""Reminder policies: the schema of rules/reminders.yaml, loading with line numbers, env overrides.

`load_policies(path)` validates the file with pydantic and raises `RuleError(path, message,
line)` naming the field and the bad value (an unknown key with the closest valid one);
environment variables (CHURNWATCH_WEBHOOK_URL, CHURNWATCH_SMTP_HOST ...) override the delivery
targets so secrets stay out of the file.

The policies under `cues:` belong to cue types (rules/cue_types.yaml, pipeline.cues.cue_types):
a type's `reminder:` names its policy, by default the one named like its label. After loading,
`Policies.cues` is keyed by cue label, so the planner looks a cue's policy up by its label.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typing

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from pipeline.cues.cue_types import CueTypes, load_cue_types
from pipeline.errors import RuleError
from pipeline.rules_yaml import closest, key_lines, line_for, plain_message, read_yaml, unknown_key

__all__ = ["PRIORITIES", "REASONS", "Policies", "Policy", "load_policies"]

PRIORITIES = ("low", "normal", "high", "urgent")
# reasons that are not cue labels
REASONS = ("risk_threshold", "silence", "customer_request")
_PLACEHOLDERS = {"account", "due", "when", "quote"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(_Strict):
    title: dict[str, str]  # short name per language; "en" required
    due_in_days: Annotated[int, Field(ge=0, le=365)]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    escalate: bool = False  # copy the rep's manager
    closed_by_contact: bool = True  # a reached call logged in the CRM closes it
    action: dict[str, str]  # suggested action per language; "en" required

    @field_validator("title", "action")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        if "en" not in value:
            raise ValueError("needs an English text (key `en`); other languages are optional")
        for lang, text in value.items():
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            unknown = names - _PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"{lang}: unknown placeholder {{{sorted(unknown)[0]}}}; "
                    f"use {', '.join('{' + p + '}' for p in sorted(_PLACEHOLDERS))}"
                )
        return value

    def text(self, field: str, language: str | None) -> str:
        texts = getattr(self, field)
        return texts.get(language or "en") or texts["en"]


class SilencePolicy(Policy):
    after_days: Annotated[int, Field(ge=1, le=3650)] = 30  # no contact for this many days


class FollowUp(_Strict):
    max_unanswered: Annotated[int, Field(ge=1, le=50)] = 3
    retry_after_days: Annotated[int, Field(ge=1, le=90)] = 2
    nurture_every_days: Annotated[int, Field(ge=1, le=365)] = 14
    nurture_attempts: Annotated[int, Field(ge=0, le=50)] = 2
    unanswered_outcomes: list[str] = ["unanswered", "no_reply", "no_answer", "no-answer"]
    reached_outcomes: list[str] = ["reached", "connected", "completed", "answered"]


class Smtp(_Strict):
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    sender: str = "churnwatch@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None  # only from CHURNWATCH_SMTP_PASSWORD, never the file
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10


def _check_zone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use a name like Europe/Berlin, "
                         "America/New_York or UTC") from None
    return value


class RepTarget(_Strict):
    email: str | None = None
    webhook_url: str | None = None  # the rep's own channel; the team webhook_url is the fallback
    language: str | None = None
    timezone: str | None = None  # e.g. Europe/Berlin; default: default_timezone

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _check_zone(v)))


class Delivery(_Strict):
    webhook_url: str | None = None
    manager_webhook_url: str | None = None
    manager_email: str | None = None
    base_url: str | None = None  # the churnwatch web app: messages link to {base_url}/accounts/{id}
    digest: bool = False  # one message a day per rep instead of one per reminder
    digest_hour: Annotated[int, Field(ge=0, le=23)] | None = None  # local hour; default due_hour
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    backoff_seconds: Annotated[float, Field(ge=0, le=86400)] = 60
    smtp: Smtp = Smtp()
    reps: dict[str, RepTarget] = {}

    def account_link(self, account_id: str) -> str | None:
        if not self.base_url:
            return None
        return f"{self.base_url.rstrip('/')}/accounts/{quote(account_id, safe='')}"


class Policies(_Strict):
    version: Literal[1] = 1
    default_language: str = "en"
    due_hour: Annotated[int, Field(ge=0, le=23)] = 9  # the start of the rep's working day
    default_timezone: str = "UTC"  # reps without a `timezone` under delivery.reps
    skip_weekends: bool = True
    cues: dict[str, Policy] = {}
    risk_threshold: Policy
    silence: SilencePolicy
    customer_request: Policy
    follow_up: FollowUp = FollowUp()
    delivery: Delivery = Delivery()

    _zone = field_validator("default_timezone")(classmethod(lambda cls, v: _check_zone(v)))
    _cue_types: CueTypes | None = PrivateAttr(default=None)  # the cue types the policies were loaded with
    _warnings: list[str] = PrivateAttr(default_factory=list)  # for `churnwatch rules check`

    @property
    def warnings(self) -> list[str]:
        """What `churnwatch rules check` warns about: cue types without a policy, policies no type uses."""
        return list(self._warnings)

    @property
    def cue_types(self) -> CueTypes:
        """The cue types of the pack these policies came from (their texts name what was heard)."""
        return self._cue_types if self._cue_types is not None else load_cue_types()

    def zone(self, rep_name: str | None) -> ZoneInfo:
        """The time zone a rep works in (delivery.reps.<name>.timezone, else default_timezone)."""
        target = self.delivery.reps.get(rep_name) if rep_name else None
        return ZoneInfo((target.timezone if target and target.timezone else None) or self.default_timezone)

    @field_validator("cues")
    @classmethod
    def _labels(cls, value: dict[str, Policy], info: ValidationInfo) -> dict[str, Policy]:
        types: CueTypes = (info.context or {}).get("cue_types") or load_cue_types()
        known = set(types.labels) | {t.reminder for t in types.types if t.reminder}
        for label in value:
            if label not in known:
                near = closest(label, sorted(known))
                hint = f", did you mean `{near}`?" if near else "."
                raise ValueError(f"unknown cue label {label!r}: no cue type in {types.path or 'the built-in types'} "
                                 f"is called so or names it as its reminder{hint} Cue types: "
                                 f"{', '.join(types.labels)}")
        return value

    def policy(self, reason: str) -> Policy | None:
        """The policy behind a reminder reason (a cue label, risk_threshold, silence ...)."""
        if reason in REASONS:
            return getattr(self, reason)
        return self.cues.get(reason)


# environment variable → (path in delivery, type)
ENV_OVERRIDES = {
    "CHURNWATCH_WEBHOOK_URL": (("webhook_url",), str),
    "CHURNWATCH_MANAGER_WEBHOOK_URL": (("manager_webhook_url",), str),
    "CHURNWATCH_MANAGER_EMAIL": (("manager_email",), str),
    "CHURNWATCH_BASE_URL": (("base_url",), str),
    "CHURNWATCH_SMTP_HOST": (("smtp", "host"), str),
    "CHURNWATCH_SMTP_PORT": (("smtp", "port"), int),
    "CHURNWATCH_SMTP_FROM": (("smtp", "sender"), str),
    "CHURNWATCH_SMTP_STARTTLS": (("smtp", "starttls"), bool),
    "CHURNWATCH_SMTP_USER": (("smtp", "username"), str),
    "CHURNWATCH_SMTP_PASSWORD": (("smtp", "password"), str),
}


def _apply_env(data: dict, env: Mapping[str, str], path: Path) -> None:
    delivery = data.setdefault("delivery", {}) or {}
    data["delivery"] = delivery
    for name, (keys, kind) in ENV_OVERRIDES.items():
        raw = env.get(name)
        if not raw:
            continue
        if kind is int:
            try:
                value = int(raw)
            except ValueError:
                raise RuleError(path, f"{name}={raw!r} must be a whole number (a port).") from None
        elif kind is bool:
            value = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            value = raw
        target = delivery
        for key in keys[:-1]:
            target = target.setdefault(key, {}) or {}
            delivery[key] = target
        target[keys[-1]] = value


def load_policies(path: Path, env: Mapping[str, str] | None = None, cue_types: CueTypes | None = None) -> Policies:
    """Read and validate rules/reminders.yaml; `env` (default os.environ) overrides targets.
    `cue_types` (default: those of the folder the file is in) say which policy each cue raises."""
    path = Path(path)
    env = os.environ if env is None else env
    cue_types = cue_types if cue_types is not None else load_cue_types(path.parent)
    data, node = read_yaml(path, " Create it from the default rules/reminders.yaml.")
    if not isinstance(data, dict) or node is None:
        raise RuleError(path, "expected a mapping with cues:, risk_threshold:, silence:, "
                        "customer_request:, follow_up: and delivery: at the top.", 1)
    lines = key_lines(node)
    if isinstance((data.get("delivery") or {}).get("smtp"), dict) and "password" in data["delivery"]["smtp"]:
        raise RuleError(path, "delivery.smtp.password: do not keep passwords in this file; "
                        "set CHURNWATCH_SMTP_PASSWORD instead.",
                        line_for(("delivery", "smtp", "password"), lines))
    _apply_env(data, env, path)
    try:
        policies = Policies.model_validate(data, context={"cue_types": cue_types})
    except ValidationError as e:
        err = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        msg = plain_message(err)
        if err["type"] == "extra_forbidden":
            valid = _fields_at(loc[:-1])
            raise RuleError(path, f"{'.'.join(map(str, loc[:-1])) + ': ' if loc[:-1] else ''}"
                            f"{unknown_key(loc[-1], valid)}", line_for(loc, lines)) from None
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        if len(got) > 100:
            got = ""
        key = msg.split(":", 1)[0]  # a per-language text error names its language first
        if loc + (key,) in lines:
            loc, got = loc + (key,), ""
        raise RuleError(path, f"{where}: {msg}{got}.", line_for(loc, lines)) from None
    by_label: dict[str, Policy] = {}
    for name, policy in policies.cues.items():
        for t in cue_types.types:
            if t.reminder == name:
                by_label.setdefault(t.label, policy)
    for t in cue_types.types:
        if t.reminder_set and t.reminder and t.reminder not in policies.cues:
            src = cue_types.path or path
            raise RuleError(src, f"cue type {t.label!r}: reminder {t.reminder!r} is not a policy under cues: in "
                            f"{path}; add it there, or write reminder: null for no reminder.",
                            cue_types.lines.get(("types", cue_types.types.index(t), "reminder"), t.line))
    warnings = []
    for name in policies.cues:
        if not any(t.reminder == name for t in cue_types.types):
            warnings.append(str(RuleError(path, f"cues.{name}: no cue type raises this reminder (cue type "
                                                f"{name!r} has reminder: {cue_types.get(name).reminder}).",
                                          line_for(("cues", name), lines))))
    for t in cue_types.types:
        if t.reminder is not None and t.label not in by_label:
            warnings.append(str(RuleError(cue_types.path or path, f"cue type {t.label!r} has no reminder policy "
                                          f"(cues: {t.reminder}: in {path.name}), so its cues raise no reminder. "
                                          "Add one, or write reminder: null to say so.", t.line)))
    policies = policies.model_copy(update={"cues": by_label})
    policies._cue_types = cue_types
    policies._warnings = warnings
    return policies


def _fields_at(loc: tuple) -> list[str]:
    """The keys valid at a place of the file (for "did you mean"): the fields of the model there."""
    model: typing.Any = Policies
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(part)
            if field is None:
                return []
            model = field.annotation
        elif typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]
        else:
            return []
    if typing.get_origin(model) is dict:
        return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
