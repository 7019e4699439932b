"""Old customers worth winning back: former and lapsed accounts, ranked, each with a nurture plan.

    found = dormant_accounts(book.values(), DormantOptions(as_of=date(2026, 11, 15)), rules)

- former: the account is lost;
- lapsed: a customer (it has ordered) with no order and no two-way contact for `days` days
  (two-way: an answered or replied activity, an inbound one, or a recorded call).
Ranked by what they used to buy (their order value over the `value_window_days` before their last
order) weighted by how long ago they went quiet (halved every `half_life_days`): a big customer
who left last spring comes before a small one who left three years ago.

Each gets its next try planned with the team's follow-up policy (rules/reminders.yaml
`follow_up`), as a reminder follows it: after an unanswered try, the next one `retry_after_days`
later until `max_unanswered` tries, then one every `nurture_every_days`, and never more than the
policy allows (`max_unanswered` + `nurture_attempts` unanswered tries since they went quiet):
after that the plan says stop. A due day on a weekend moves to the Monday when `skip_weekends`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from pipeline.errors import ChurnwatchError

__all__ = ["DormantAccount", "DormantOptions", "NurtureRules", "dormant_accounts", "last_two_way"]

REACHED = frozenset({"reached", "answered", "replied", "held", "connected", "completed"})
UNANSWERED = frozenset({"unanswered", "no_reply", "no_answer", "no-answer", "voicemail", "left_voicemail", "busy"})


@dataclass(frozen=True)
class NurtureRules:
    """The follow-up policy (rules/reminders.yaml `follow_up`), as a reminder follows it."""

    max_unanswered: int = 3  # tries retried after retry_after_days ...
    retry_after_days: int = 2
    nurture_every_days: int = 14  # ... then one try every nurture_every_days ...
    nurture_attempts: int = 2  # ... for this many more, then stop
    skip_weekends: bool = True  # a try due on a Saturday or Sunday moves to the Monday
    unanswered: frozenset[str] = UNANSWERED  # activity outcomes that count as an unanswered try
    reached: frozenset[str] = REACHED  # outcomes that count as a two-way contact

    def __post_init__(self):
        if min(self.max_unanswered, self.retry_after_days, self.nurture_every_days) < 1 or self.nurture_attempts < 0:
            raise ChurnwatchError("follow_up: max_unanswered, retry_after_days and nurture_every_days must be 1 or more.")

    @property
    def max_attempts(self) -> int:
        """Unanswered tries the policy allows before it stops."""
        return self.max_unanswered + self.nurture_attempts

    def gap_after(self, tries: int) -> int:
        """Days from the last of `tries` unanswered tries to the next one."""
        return self.retry_after_days if tries < self.max_unanswered else self.nurture_every_days


@dataclass(frozen=True)
class DormantOptions:
    as_of: date
    days: int = 180  # no order and no two-way contact for this many days: lapsed
    value_window_days: int = 365  # "what they used to buy": order value over these days before the last order
    half_life_days: int = 365  # the weight of what they bought halves every this many days of quiet

    def __post_init__(self):
        if not 1 <= self.days <= 3650:
            raise ChurnwatchError(f"--days {self.days}: use a number of days from 1 to 3650.")


@dataclass
class DormantAccount:
    account_id: str
    name: str | None
    segment: str | None
    rep: str | None
    status: str  # former | lapsed
    quiet_since: date  # lost, last order or last two-way contact, whichever came last
    days_quiet: int
    last_order: date | None
    last_contact: date | None  # last two-way contact
    used_to_buy: float  # order value over the value window before the last order
    lifetime_value: float
    score: float  # used_to_buy weighted by how long ago
    attempts: int  # unanswered outbound tries since quiet_since
    next_try: date | None  # None: stop, the policy allows no more tries
    try_number: int | None  # the try next_try would be (1-based)
    allowed: int  # tries the policy allows
    plan: str  # in plain words

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}


def last_two_way(entry: dict[str, Any], reached: Iterable[str] = REACHED) -> date | None:
    """The last answered, replied or inbound activity, or recorded call, of an account."""
    reached = set(reached)
    days = [a["day"] for a in entry["activities"]
            if str(a.get("outcome") or "").lower() in reached or str(a.get("direction") or "").lower() == "inbound"]
    days += list(entry.get("calls") or [])
    return max(days) if days else None


def _working(day: date, skip_weekends: bool) -> date:
    while skip_weekends and day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _plan(entry: dict[str, Any], quiet_since: date, options: DormantOptions, rules: NurtureRules):
    tries = sorted(a["day"] for a in entry["activities"]
                   if a["day"] > quiet_since and str(a.get("direction") or "").lower() == "outbound"
                   and str(a.get("outcome") or "").lower() in rules.unanswered)
    n = len(tries)
    if n >= rules.max_attempts:
        return n, None, None, (f"stop: {n} unanswered tries since {quiet_since}; the follow-up policy allows "
                               f"{rules.max_attempts}")
    gap = rules.gap_after(n)
    due = options.as_of if not tries else max(options.as_of, tries[-1] + timedelta(days=gap))
    due = _working(due, rules.skip_weekends)
    return n, due, n + 1, f"try {n + 1} of {rules.max_attempts} on {due}" + (
        f" ({gap} days after the last unanswered one)" if tries else "")


def dormant_accounts(book: Iterable[dict[str, Any]], options: DormantOptions,
                     rules: NurtureRules = NurtureRules()) -> list[DormantAccount]:
    """Former and lapsed customers, best to win back first (see the module)."""
    out = []
    for entry in book:
        orders = [(d, a) for d, a in entry["orders"] if d <= options.as_of]
        last_order = max((d for d, _ in orders), default=None)
        contact = last_two_way({**entry, "activities": [a for a in entry["activities"] if a["day"] <= options.as_of],
                                "calls": [d for d in entry.get("calls") or [] if d <= options.as_of]}, rules.reached)
        former = entry.get("status") == "lost" and (entry.get("lost_on") is None or entry["lost_on"] <= options.as_of)
        seen = [d for d in (last_order, contact, entry.get("lost_on") if former else None) if d is not None]
        if not seen:
            continue  # never a customer, never spoken with: a prospect, not an old customer
        quiet_since = max(seen)
        if not former:
            if last_order is None or (options.as_of - quiet_since).days < options.days:
                continue
        window_start = last_order - timedelta(days=options.value_window_days) if last_order else None
        used = sum(a for d, a in orders if window_start is not None and d > window_start)
        days_quiet = (options.as_of - quiet_since).days
        score = used * 0.5 ** (days_quiet / options.half_life_days)
        attempts, due, number, words = _plan(entry, quiet_since, options, rules)
        out.append(DormantAccount(entry["account_id"], entry.get("name"), entry.get("segment"), entry.get("rep"),
                                  "former" if former else "lapsed", quiet_since, days_quiet, last_order, contact,
                                  round(used, 2), round(sum(a for _, a in orders), 2), round(score, 2), attempts, due,
                                  number, rules.max_attempts, words))
    out.sort(key=lambda d: (-d.score, d.days_quiet, d.account_id))
    return out
