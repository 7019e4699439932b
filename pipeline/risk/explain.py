"""What a manager reads: each factor's share of the 0-100 score, and one event counted once.

Score points. The score is S = 100 * sigmoid(b + c_1 + ... + c_n): b is the model's intercept
(the log-odds of an account with every factor at its normal value; per segment where risk.yaml
sets one) and c_i the log-odds factor i adds. The base score is S_0 = 100 * sigmoid(b). The
difference S - S_0 is split in proportion to each factor's log-odds:

    points_i = (S - S_0) * c_i / (c_1 + ... + c_n)

(when the c_i sum to 0, the limit (S - S_0) / sum c = 100 * sigmoid'(b) is used). So
S_0 + sum points_i = S exactly; a factor that adds log-odds adds points and one that takes log-odds
away takes points away (the ratio is always positive), and the factors keep their order. This is
also the Aumann-Shapley (integrated gradients) attribution of the sigmoid along the straight path
from the base to the account, the exact additive split for a function of a sum. A factor's points
depend on the others through the curve: +1 log-odds is worth more points near 50 than near 95.
`display_points` rounds them so that the printed numbers still add up to the printed score.

One event counted once. The same real event can reach several factors: an invoice dispute said
on a call (cue_invoice_dispute), the billing case filed for it (disputes_180), the same case again
as a support case (support_cases_90, support_trend) and the invoice left unpaid past due
(late_payments_365); one sentence can fire two cues. Each piece of evidence names what it refers
to (`event_keys`: the invoice, the support case, the sentence of the call, the contact; a quote's
`refs` come from pipeline.risk.features.link_cue_refs). Evidence that shares a key, directly or
through a chain, is one event. The event is counted once, in the factor where it weighs most (the
largest drop in log-odds if it were taken out there); every other factor it reached counts it no
more (its value is lowered by the event's units: 1 for a case or an invoice, the decayed weight
for a cue) and its evidence says where it was counted (`counted_under`).
"""

from __future__ import annotations

import math
from typing import Any

# Feature values that count events one by one: their evidence carries `units`.


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def score_points(intercept: float, contributions: dict[str, float]) -> tuple[float, float, dict[str, float]]:
    """(score, base score, points per factor) for log-odds `contributions` (factor -> c_i, no
    intercept) on top of `intercept`; base + sum(points) == score up to float rounding."""
    total = math.fsum(contributions.values())
    score, base = 100.0 * sigmoid(intercept + total), 100.0 * sigmoid(intercept)
    if abs(total) > 1e-9:
        ratio = (score - base) / total
    else:  # the limit of (S - S0) / total as total -> 0
        p = sigmoid(intercept)
        ratio = 100.0 * p * (1.0 - p)
    return score, base, {k: ratio * v for k, v in contributions.items()}


def display_points(base: float, points: dict[str, float], score: float, digits: int = 1) -> tuple[float, dict[str, float]]:
    """Rounded base and points that add up to round(score, digits) exactly (largest remainder)."""
    unit = 10.0 ** -digits
    target = round(round(score, digits) / unit)
    raw = {"\0base": base / unit, **{k: v / unit for k, v in points.items()}}
    low = {k: math.floor(v) for k, v in raw.items()}
    short = target - sum(low.values())
    order = sorted(raw, key=lambda k: (-(raw[k] - low[k]), k)) if short >= 0 else \
        sorted(raw, key=lambda k: (raw[k] - low[k], k))
    for k in order[:abs(short)]:
        low[k] += 1 if short > 0 else -1
    out = {k: round(v * unit, digits) for k, v in low.items()}
    return out.pop("\0base"), out


def event_keys(ev: dict[str, Any]) -> set[str]:
    """What one piece of evidence refers to: its invoice, support case, call sentence or contact
    (and, for a call quote, the invoices, cases and contacts it names: `refs`)."""
    keys = set(ev.get("refs") or ())
    kind = ev.get("kind")
    if kind == "cue":
        where = ev.get("segment_id")
        where = f"s{where}" if where is not None else " ".join(str(ev.get("quote", "")).lower().split())
        keys.add(f"sentence:{ev.get('call_id')}:{where}")
    elif kind == "support":
        keys.add(f"case:{ev.get('case_id') or str(ev.get('date')) + ':' + str(ev.get('subject') or '')}")
    elif kind == "contact":
        keys.add(f"contact:{str(ev.get('name') or '').strip().lower()}")
    if ev.get("invoice_id"):
        keys.add(f"invoice:{ev['invoice_id']}")
    return keys


def merge_events(factors, values: dict[str, float | None], evidence: dict[str, list[dict]],
                 weight_of) -> tuple[dict[str, float | None], list[dict]]:
    """Count each event once. `factors`: the model's factors (feature, x(value)); `values`: raw
    feature values; `evidence`: feature -> evidence list (items with `units` take part);
    `weight_of(factor, value)`: the log-odds the factor adds at a value. Returns the merged
    values and one record per merged event: {"kept": feature, "dropped": [features], "keys"}.
    Evidence items are annotated in place: `counted_under` on those no longer counted,
    `also_in` on the one that is."""
    occ = []  # (feature, item)
    where = []  # (feature, index in its evidence list)
    for f in factors:
        for j, item in enumerate(evidence.get(f.feature) or ()):
            if item.get("units") and item["units"] > 0:
                occ.append((f, item))
                where.append((f.feature, j))
    if len(occ) < 2:
        return values, []
    parent = list(range(len(occ)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, (_, item) in enumerate(occ):
        for k in event_keys(item):
            if k in owner:
                a, b = find(i), find(owner[k])
                if a != b:
                    parent[a] = b
            else:
                owner[k] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(occ)):
        groups.setdefault(find(i), []).append(i)
    merged = dict(values)
    records = []
    drops: dict[str, float] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in members:  # annotate copies, never the caller's feature evidence
            f, item = occ[i]
            item = dict(item)
            occ[i] = (f, item)
            evidence[where[i][0]][where[i][1]] = item

        def gain(i):
            f, item = occ[i]
            v = values.get(f.feature)
            if v is None:
                return 0.0
            return weight_of(f, v) - weight_of(f, v - item["units"])

        keep = max(members, key=lambda i: (gain(i), occ[i][1]["units"], -i))
        kf, kitem = occ[keep]
        dropped = []
        for i in members:
            if i == keep:
                continue
            f, item = occ[i]
            drops[f.feature] = drops.get(f.feature, 0.0) + item["units"]
            item["counted_under"] = kf.feature
            dropped.append(f.feature)
        kitem["also_in"] = sorted(set(dropped) - {kf.feature}) or kitem.get("also_in", [])
        kitem["same_event"] = [{k: v for k, v in occ[i][1].items() if k not in ("same_event", "refs")}
                               | {"feature": occ[i][0].feature} for i in members if i != keep]
        keys = sorted(set().union(*(event_keys(occ[i][1]) for i in members)))
        quotes = [occ[i][1]["quote"] for i in members if occ[i][1].get("quote")]
        records.append({"kept": kf.feature, "dropped": dropped, "keys": keys, "quotes": quotes[:3]})
    for name, d in drops.items():
        v = merged.get(name)
        if v is not None:
            nv = v - d
            merged[name] = 0.0 if abs(nv) < 1e-9 else nv
    return merged, records
