"""Unit tests of the Python reference (no database).

Each rule gets a small hand-computed example, with ties at a threshold and the
"all clients equal" case; a randomised test compares `segment` (which works on
the per-month aggregate Q1) with a deliberately naive per-client loop over the
raw lines, written straight from domain.md section 1.

Run:  "$(tests/python/setup-venv.sh)" -m pytest -q tests/python
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import statistics
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta

import reference_scoring as ref

D = dt.date(2026, 11, 23)  # window 2025-11-01 .. 2026-10-31, C = (2026-08-23, D], V = (2026-05-23, 2026-08-23]


def day(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


# ------------------------------------------------------------------ test helpers


def lines_frame(rows) -> pd.DataFrame:
    """rows: (client_id, document_id, amount_minor, business_date[, product_line])."""
    rows = [r if len(r) == 5 else (*r, "L1") for r in rows]
    df = pd.DataFrame(rows, columns=["client_id", "document_id", "amount_minor", "business_date", "product_line"])
    df["business_date"] = pd.to_datetime(df["business_date"])
    df["amount_minor"] = df["amount_minor"].astype(np.int64)
    return df


def q1(lines: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Q1 in pandas: client x calendar month, lines on or before as_of."""
    lines = lines[lines["business_date"] <= pd.Timestamp(as_of)].copy()
    lines["month"] = lines["business_date"].dt.to_period("M").dt.to_timestamp()
    buy = lines[lines["amount_minor"] > 0]
    keys = ["client_id", "month"]
    out = lines.groupby(keys)["amount_minor"].sum().rename("revenue").to_frame()
    agg = buy.groupby(keys).agg(
        documents=("document_id", "nunique"),
        first_purchase=("business_date", "min"),
        last_purchase=("business_date", "max"),
    )
    out = out.join(agg)
    out["documents"] = out["documents"].fillna(0).astype(np.int64)
    return out.reset_index()


def q2(lines: pd.DataFrame, as_of: dt.date, window_months: int = 12) -> pd.DataFrame:
    ws, we = ref.window_bounds(as_of, window_months)
    sel = lines[(lines["business_date"] >= ws) & (lines["business_date"] <= we) & (lines["amount_minor"] > 0)]
    return sel.groupby("client_id")["product_line"].nunique().rename("product_lines").reset_index()


def clients_frame(ids, known_since="2020-01-01") -> pd.DataFrame:
    ids = list(ids)
    ks = known_since if isinstance(known_since, list) else [known_since] * len(ids)
    return pd.DataFrame({"id": ids, "known_since": pd.to_datetime(ks)})


def run(rows, as_of=D, clients=None, **params) -> pd.DataFrame:
    lines = lines_frame(rows)
    if clients is None:
        clients = clients_frame(sorted(set(lines["client_id"])))
    return ref.segment(q1(lines, as_of), clients, q2(lines, as_of, params.get("window_months", 12)),
                       ref.Params(as_of=as_of, **params))


def monthly_rows(client: str, start: str, amounts, day_of_month: int = 10):
    """One purchase document per month from `start` with the given amounts."""
    first = day(start)
    return [
        (client, f"{client}-{i}", a, (first + relativedelta(months=i)).replace(day=day_of_month).isoformat())
        for i, a in enumerate(amounts)
    ]


# ------------------------------------------------------------------ dates


def test_window_bounds():
    assert ref.window_bounds(D, 12) == (pd.Timestamp("2025-11-01"), pd.Timestamp("2026-10-31"))
    assert ref.window_bounds(dt.date(2026, 1, 1), 1) == (pd.Timestamp("2025-12-01"), pd.Timestamp("2025-12-31"))
    assert ref.window_bounds(dt.date(2024, 3, 31), 1) == (pd.Timestamp("2024-02-01"), pd.Timestamp("2024-02-29"))


def test_lifecycle_bounds_clamp_to_month_end():
    assert ref.lifecycle_bounds(D, 3) == (pd.Timestamp("2026-08-23"), pd.Timestamp("2026-05-23"))
    assert ref.lifecycle_bounds(dt.date(2026, 5, 31), 3) == (pd.Timestamp("2026-02-28"), pd.Timestamp("2025-11-30"))
    assert ref.lifecycle_bounds(dt.date(2024, 8, 31), 3) == (pd.Timestamp("2024-05-31"), pd.Timestamp("2024-02-29"))


# ------------------------------------------------------------------ ABC


def abc(values, a=0.5, b=0.8):
    return ref.abc_classes(pd.Series(values, dtype=np.int64), a, b).fillna("-").tolist()


def test_abc_boundary_client_stays_upper_and_ties_share():
    # total 100; prior shares 0, .5, .8, .8 -> A, B (0.5 is not < 0.5), C, C
    assert abc([50, 30, 10, 10]) == ["A", "B", "C", "C"]
    # prior shares 0, .4, .4: equal revenue shares the class
    assert abc([30, 40, 30]) == ["A", "A", "A"]
    # just under the boundary: prior 49/100 < .5 -> A
    assert abc([49, 21, 30]) == ["A", "B", "A"]


def test_abc_all_equal_and_unclassed():
    assert abc([7, 7, 7, 7]) == ["A", "A", "A", "A"]
    assert abc([0, -5, 10]) == ["-", "-", "A"]
    assert abc([0, -1]) == ["-", "-"]


def test_abc_other_thresholds_and_order_independence():
    vals = [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]  # total 550
    got = abc(vals, 0.8, 0.95)
    # priors: 0,100,190,270,340,400,450,490,520,540 -> shares < .8 while prior < 440; < .95 while < 522.5
    assert got == ["A"] * 6 + ["B"] * 3 + ["C"]
    shuffled = pd.Series(vals[::-1], index=list(range(10))[::-1], dtype=np.int64)
    assert ref.abc_classes(shuffled, 0.8, 0.95).sort_index().tolist() == got


def test_abc_exact_with_huge_totals():
    # prior * 10000 would overflow int64; the comparison must stay exact
    assert abc([5 * 10**17, 3 * 10**17, 2 * 10**17]) == ["A", "B", "C"]
    assert abc([5 * 10**17 - 1, 3 * 10**17 + 1, 2 * 10**17]) == ["A", "A", "C"]


# ------------------------------------------------------------------ XYZ


def test_xyz_thresholds_inclusive():
    rows = (
        monthly_rows("x", "2026-07-01", [90, 110, 90, 110])  # mean 100, std 10 -> CV 0.10 -> X
        + monthly_rows("y", "2026-07-01", [75, 125, 75, 125])  # CV 0.25 -> Y
        + monthly_rows("z", "2026-07-01", [74, 126, 74, 126])  # CV 0.26 -> Z
        + monthly_rows("w", "2025-01-01", [100] * 22)  # constant over the whole window -> CV 0 -> X
    )
    out = run(rows)
    assert out.loc[["x", "y", "z", "w"], "xyz"].tolist() == ["X", "Y", "Z", "X"]
    assert out.loc["x", "cv"] == pytest.approx(0.10, abs=1e-12)
    assert out.loc["z", "cv"] == pytest.approx(0.26)
    assert out.loc["w", "cv"] == 0.0


def test_xyz_series_starts_at_first_purchase_and_counts_zero_months():
    rows = [
        # first purchase 2026-08-05 -> series Aug, Sep, Oct = [100, 0, 100]: CV = sqrt(2)/2
        ("a", "a1", 100, "2026-08-05"),
        ("a", "a2", 100, "2026-10-05"),
        # a return before the first purchase is not part of the series
        ("b", "b0", -500, "2026-06-01"),
        ("b", "b1", 100, "2026-07-03"),
        ("b", "b2", 100, "2026-08-03"),
        ("b", "b3", 100, "2026-09-03"),
        # first purchase long ago: the series is the 12 window months, one purchase in them
        ("c", "c0", 100, "2020-01-01"),
        ("c", "c1", 120, "2026-03-01"),
        ("c", "c2", 10, "2026-11-20"),  # D's own month: outside the window
    ]
    out = run(rows)
    assert out.loc["a", "xyz"] == "Z"
    assert out.loc["a", "cv"] == pytest.approx(math.sqrt(2) / 2)
    # b: Jul..Oct = [100, 100, 100, 0] -> mean 75, std 43.30 -> CV 0.577
    assert out.loc["b", "cv"] == pytest.approx(statistics.pstdev([100, 100, 100, 0]) / 75)
    assert out.loc["b", "window_revenue"] == -200
    # c: 11 zeros and one 120 -> mean 10, std sqrt(1200) -> CV 3.4641
    assert out.loc["c", "cv"] == pytest.approx(statistics.pstdev([120] + [0] * 11) / 10)


def test_xyz_none_cases():
    rows = (
        monthly_rows("short", "2026-07-01", [100, 100])  # series Jul..Oct = [100, 100, 0, 0]: 4 months
        + [("short", "s-late", 100, "2026-11-01")]  # D's month: not in the series
        + monthly_rows("new", "2026-08-25", [100, 100, 100], day_of_month=25)  # Aug, Sep, Oct but lifecycle new
        + [("zero", "z1", 100, "2026-06-10"), ("zero", "z2", -100, "2026-07-10")]  # series sum 0
        + [("neg", "n1", 100, "2026-06-10"), ("neg", "n2", -300, "2026-07-10")]  # series sum < 0
        + [("ret", "r1", -100, "2026-06-10")]  # never purchased
    )
    out = run(rows)
    assert out.loc["new", "lifecycle"] == "new"
    assert out.loc["short", "xyz"] == "Z" and out.loc["short", "cv"] == 1.0  # mean 50, std 50
    assert pd.isna(out.loc["new", "xyz"])
    assert pd.isna(out.loc["zero", "xyz"]) and pd.isna(out.loc["neg", "xyz"]) and pd.isna(out.loc["ret", "xyz"])
    # with a minimum of 5 months the 4-month series gets none
    out5 = run(rows, xyz_min_months=5)
    assert pd.isna(out5.loc["short", "xyz"])


def test_xyz_minimum_months_boundary():
    # first purchase in Aug 2026 (before C): series Aug, Sep, Oct = exactly 3 months
    rows = [("m", "m1", 100, "2026-08-01"), ("m", "m2", 100, "2026-09-01"), ("m", "m3", 100, "2026-10-01")]
    out = run(rows)
    assert out.loc["m", "lifecycle"] == "regular"
    assert out.loc["m", "xyz"] == "X" and out.loc["m", "cv"] == 0.0
    assert pd.isna(run(rows, xyz_min_months=4).loc["m", "xyz"])


# ------------------------------------------------------------------ RFM


def rfm(recency, frequency, monetary):
    idx = [f"c{i}" for i in range(len(recency))]
    s = lambda v: pd.Series(v, index=idx, dtype=np.int64)  # noqa: E731
    return ref.rfm_scores(s(recency), s(frequency), s(monetary))


def test_rfm_distinct_values():
    got = rfm([50, 40, 30, 20, 10], [1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert got["r"].tolist() == [1, 2, 3, 4, 5]
    assert got["f"].tolist() == [1, 2, 3, 4, 5]
    assert got["rfm_code"].tolist() == ["111", "222", "333", "444", "555"]
    # n = 3: 1 + floor(5w/3) for w = 0, 1, 2 -> 1, 2, 4
    assert rfm([3, 2, 1], [1, 2, 3], [1, 2, 3])["rfm_code"].tolist() == ["111", "222", "444"]


def test_rfm_ties_share_a_score():
    got = rfm([3, 3, 10], [10, 10, 5], [-5, 7, 7])
    # recency: 3 days has one client strictly worse (10 days) -> 1 + floor(5/3) = 2
    assert got["r"].tolist() == [2, 2, 1]
    assert got["f"].tolist() == [2, 2, 1]
    assert got["m"].tolist() == [1, 2, 2]


def test_rfm_all_equal():
    got = rfm([4] * 6, [2] * 6, [100] * 6)
    assert got["rfm_code"].tolist() == ["111"] * 6


def test_rfm_in_segment():
    rows = [
        ("a", "a1", 100, "2026-10-01"),
        ("a", "a1", 50, "2026-10-01"),  # same document: one transaction
        ("a", "a2", 100, "2026-11-20"),  # D's month: recency only
        ("b", "b1", 300, "2026-01-01"),
        ("b", "b2", 300, "2026-02-01"),
        ("b", "b3", -1000, "2026-03-01"),  # a return document is not a transaction
        ("c", "c1", 100, "2024-01-01"),  # no purchase in the window: not scored
        ("d", "d1", 100, "2026-11-01"),  # only in D's month: not scored
    ]
    out = run(rows)
    assert out.loc["a", ["recency_days", "frequency", "monetary"]].tolist() == [3, 1, 150]
    assert out.loc["b", ["recency_days", "frequency", "monetary"]].tolist() == [(D - day("2026-02-01")).days, 2, -400]
    # n = 2, so one client strictly worse scores 1 + floor(5/2) = 3: R a 3, b 1; F a 1, b 3; M a 3, b 1
    assert out.loc["a", "rfm_code"] == "313"
    assert out.loc["b", "rfm_code"] == "131"
    assert pd.isna(out.loc["c", "rfm_code"]) and pd.isna(out.loc["d", "rfm_code"])
    assert pd.isna(out.loc["c", "recency_days"])


# ------------------------------------------------------------------ lifecycle


def test_lifecycle_statuses_and_period_boundaries():
    rows = [
        ("new", "n1", 10, "2026-08-24"),  # first purchase the day after D - P
        ("edge_lost", "e1", 10, "2026-08-23"),  # D - P itself is in V, not in C
        ("regular", "g1", 10, "2026-05-24"),  # first day of V
        ("regular", "g2", 10, "2026-11-23"),  # D itself is in C
        ("restored", "r1", 10, "2026-05-23"),  # D - 2P: before V
        ("restored", "r2", 10, "2026-09-01"),
        ("lost", "l1", 10, "2025-01-01"),
        ("lost", "l2", -10, "2026-10-01"),  # a return is no purchase
        ("potential", "p1", -10, "2026-10-01"),  # only returns
        ("future", "f1", 10, "2026-11-24"),  # after D: ignored
        ("future", "f0", 10, "2026-07-01"),
        ("split", "s1", 10, "2026-08-10"),  # month containing D - P: purchase in V ...
        ("split", "s2", 10, "2026-08-30"),  # ... and in C in the same month
        ("may", "m1", 10, "2026-05-01"),  # May purchases all before D - 2P
        ("may", "m2", 10, "2026-05-20"),
        ("may", "m3", 10, "2026-11-01"),
    ]
    clients = clients_frame(
        ["new", "edge_lost", "regular", "restored", "lost", "potential", "future", "split", "may", "nobody"]
    )
    out = run(rows, clients=clients)
    assert out["lifecycle"].astype(str).to_dict() == {
        "edge_lost": "lost",
        "future": "lost",
        "lost": "lost",
        "may": "restored",
        "new": "new",
        "nobody": "potential",
        "potential": "potential",
        "regular": "regular",
        "restored": "restored",
        "split": "regular",
    }


def test_population():
    rows = [("late_known", "k1", 10, "2026-11-01"), ("unknown", "u1", 10, "2026-10-01"), ("after", "a1", 10, "2026-12-01")]
    clients = clients_frame(["late_known", "future_only", "after", "old"], ["2026-12-01", "2026-12-01", "2026-12-02", "2026-11-23"])
    out = run(rows, clients=clients)
    assert out.index.tolist() == ["late_known", "old", "unknown"]
    assert out.loc["old", "lifecycle"] == "potential"


# ------------------------------------------------------------------ features, k-means, CSV


def test_features():
    rows = [
        ("a", "a1", 100, "2026-01-01", "L1"),
        ("a", "a2", 200, "2026-02-01", "L2"),
        ("a", "a2", 50, "2026-02-01", "L2"),
        ("a", "a3", 300, "2026-03-02", "L3"),
        ("a", "a4", -50, "2026-03-05", "L4"),  # return: no product line, no document
        ("a", "a0", 999, "2025-10-31", "L5"),  # before the window
        ("b", "b1", 70, "2026-06-01", "L1"),
        ("c", "c1", 70, "2026-06-01", "L1"),
        ("c", "c2", -80, "2026-07-01", "L1"),  # window revenue < 0: not clustered
    ]
    out = run(rows)
    a = out.loc["a"]
    assert a["monetary"] == 600 and a["frequency"] == 3
    assert a["avg_ticket"] == pytest.approx(200.0)
    assert a["purchase_interval_days"] == pytest.approx(60 / 2)
    assert a["product_lines"] == 3
    assert out.loc["b", "purchase_interval_days"] == 365.0  # 2025-11-01 .. 2026-10-31
    assert out["clustered"].tolist() == [True, True, False]


def test_standardise_constant_feature_is_zero():
    z = ref.standardise(np.array([[1.0, 5.0, 0.1], [3.0, 5.0, 0.1], [5.0, 5.0, 0.1]]))
    np.testing.assert_allclose(z[:, 0], [-math.sqrt(1.5), 0, math.sqrt(1.5)])
    assert (z[:, 1:] == 0).all()


def test_cluster_labels_and_effective_k():
    rows = []
    for i in range(40):
        big = i % 2 == 0
        rows.append((f"c{i:02}", f"d{i}", 100_000 + i if big else 100 + i, "2026-10-01"))
    out = run(rows)
    labels, inertia, k = ref.cluster(out, ref.Params(as_of=D, k=2))
    assert k == 2 and inertia >= 0
    big = [f"c{i:02}" for i in range(0, 40, 2)]
    assert labels[big].nunique() == 1 and labels.drop(big).nunique() == 1 and labels[big].iloc[0] != labels.drop(big).iloc[0]
    _, _, k_small = ref.cluster(out.iloc[:3], ref.Params(as_of=D, k=5))
    assert k_small == 3


def test_csv_format(tmp_path):
    rows = monthly_rows("x", "2026-07-01", [90, 110, 90, 110]) + [("p", "p1", -5, "2026-01-01")]
    out = run(rows)
    labels, _, _ = ref.cluster(out, ref.Params(as_of=D, k=5))
    path = tmp_path / "r.csv"
    ref.to_csv(out, labels, path)
    text = path.read_text().splitlines()
    assert text[0] == ",".join(ref.CSV_COLUMNS)
    assert text[1] == "p,-5,,,,,,,,potential,"
    assert text[2] == "x,400,A,X,0.100000,44,4,400,111,regular,0"


# ------------------------------------------------------------------ randomised, against a naive per-client loop


def naive(lines: pd.DataFrame, clients: pd.DataFrame, p: ref.Params) -> pd.DataFrame:
    """Straight from domain.md, one client at a time over the raw lines."""
    d = p.as_of
    ms = d.replace(day=1)
    ws, we = ms - relativedelta(months=p.window_months), ms - dt.timedelta(days=1)
    cur, prev = d - relativedelta(months=p.lifecycle_months), d - relativedelta(months=2 * p.lifecycle_months)
    rows = [r for r in lines.itertuples(index=False) if r.business_date.date() <= d]
    pop = sorted(set(clients.loc[clients["known_since"].dt.date <= d, "id"]) | {r.client_id for r in rows})
    by = {c: [] for c in pop}
    for r in rows:
        by[r.client_id].append((r.business_date.date(), r.amount_minor, r.document_id, r.product_line))
    res = {}
    for c in pop:
        ls = by[c]
        buys = [x for x in ls if x[1] > 0]
        win = [x for x in ls if ws <= x[0] <= we]
        wbuys = [x for x in win if x[1] > 0]
        rev = sum(x[1] for x in win)
        first = min((x[0] for x in buys), default=None)
        last = max((x[0] for x in buys), default=None)
        if first is None:
            life = "potential"
        elif first > cur:
            life = "new"
        elif any(x[0] > cur for x in buys):
            life = "regular" if any(prev < x[0] <= cur for x in buys) else "restored"
        else:
            life = "lost"
        xyz = cv = None
        if first is not None and life != "new":
            start = max(first.replace(day=1), ws)
            series, m = [], start
            while m <= we:
                series.append(sum(x[1] for x in win if (x[0].year, x[0].month) == (m.year, m.month)))
                m += relativedelta(months=1)
            if len(series) >= p.xyz_min_months and sum(series) > 0:
                cv = statistics.pstdev(series) / statistics.mean(series)
                xyz = "X" if cv <= p.xyz_x else "Y" if cv <= p.xyz_y else "Z"
        freq = len({x[2] for x in wbuys})
        res[c] = dict(
            window_revenue=rev, lifecycle=life, xyz=xyz, cv=cv, frequency=freq,
            recency_days=(d - last).days if last else None,
            interval=((max(x[0] for x in wbuys) - min(x[0] for x in wbuys)).days / (freq - 1)) if freq > 1 else (we - ws).days + 1,
            product_lines=len({x[3] for x in wbuys}),
        )
    out = pd.DataFrame.from_dict(res, orient="index")
    # ABC with exact fractions
    pos = sorted((v for v in out["window_revenue"] if v > 0), reverse=True)
    total = sum(pos)
    prefix = [0]
    for v in pos:
        prefix.append(prefix[-1] + v)
    neg = [-v for v in pos]

    def abc_of(v):
        if v <= 0:
            return None
        share = Fraction(prefix[bisect.bisect_left(neg, -v)], total)
        return "A" if share < Fraction(p.abc_a).limit_denominator(10_000) else "B" if share < Fraction(p.abc_b).limit_denominator(10_000) else "C"

    out["abc"] = out["window_revenue"].map(abc_of)
    # RFM by counting
    sc = out[out["frequency"] >= 1]
    n = len(sc)
    rs, fs, ms_ = sorted(sc["recency_days"]), sorted(sc["frequency"]), sorted(sc["window_revenue"])

    def code(row):
        if row["frequency"] < 1:
            return None
        wr = n - bisect.bisect_right(rs, row["recency_days"])
        wf = bisect.bisect_left(fs, row["frequency"])
        wm = bisect.bisect_left(ms_, row["window_revenue"])
        return "".join(str(min(1 + 5 * w // n, 5)) for w in (wr, wf, wm))

    out["rfm_code"] = out.apply(code, axis=1)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_naive_loop(seed):
    rnd = random.Random(seed)
    rows = []
    ids = [f"c{i}" for i in range(300)]
    for c in ids:
        kind = rnd.random()
        if kind < 0.1:
            continue
        n_docs = rnd.randint(1, 30)
        lo = day("2023-01-01") if kind < 0.8 else day("2026-08-01")
        span = (day("2026-12-31") - lo).days
        for j in range(n_docs):
            date = lo + dt.timedelta(days=rnd.randint(0, span))
            for k in range(rnd.randint(1, 3)):
                amount = rnd.choice([rnd.randint(1, 5_000), 1000, 2000]) * (-1 if rnd.random() < 0.08 else 1)
                rows.append((c, f"{c}-{j}", amount, date.isoformat(), f"L{rnd.randint(1, 6)}"))
    clients = clients_frame(ids, [("2026-12-01" if rnd.random() < 0.05 else "2022-01-01") for _ in ids])
    rows.append(("zz_not_a_client", "u1", 500, "2026-10-10", "L1"))
    for as_of in [D, dt.date(2026, 5, 31)]:
        p = ref.Params(as_of=as_of, window_months=rnd.choice([6, 12]), lifecycle_months=rnd.choice([1, 3]))
        lines = lines_frame(rows)
        got = ref.segment(q1(lines, as_of), clients, q2(lines, as_of, p.window_months), p)
        want = naive(lines, clients, p)
        assert got.index.tolist() == want.index.tolist()
        assert got["window_revenue"].tolist() == want["window_revenue"].tolist()
        assert got["lifecycle"].astype(str).tolist() == want["lifecycle"].tolist()
        assert got["abc"].fillna("").tolist() == want["abc"].fillna("").tolist()
        assert got["xyz"].fillna("").tolist() == want["xyz"].fillna("").tolist()
        np.testing.assert_allclose(got["cv"].to_numpy(float), want["cv"].to_numpy(float), rtol=1e-12, equal_nan=True)
        assert got["rfm_code"].fillna("").tolist() == want["rfm_code"].fillna("").tolist()
        sc = want["frequency"] >= 1
        assert got.loc[sc, "recency_days"].tolist() == want.loc[sc, "recency_days"].tolist()
        assert got.loc[sc, "frequency"].tolist() == want.loc[sc, "frequency"].tolist()
        cl = got["clustered"]
        np.testing.assert_allclose(got.loc[cl, "purchase_interval_days"], want.loc[cl, "interval"].astype(float), rtol=1e-12)
        assert got.loc[cl, "product_lines"].tolist() == want.loc[cl, "product_lines"].tolist()
        assert set(got["abc"].dropna()) == {"A", "B", "C"}
        if as_of == D:
            assert set(got["lifecycle"].astype(str)) == {"potential", "new", "regular", "restored", "lost"}
