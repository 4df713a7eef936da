#!/usr/bin/env python3
"""Independent Python reference of the client segmentation rules.

Implements /work/shared/domain.md section 1 (ABC, XYZ, RFM, lifecycle status and
k-means clustering) with pandas/numpy/scikit-learn, the way a data scientist
would write it. It serves two purposes:

* a speed baseline for the Rust implementation (same two aggregation queries
  pushed down to Postgres, everything else vectorised in pandas/numpy);
* a CI oracle: both implementations must agree on every class.

The core is a set of pure functions over DataFrames (``segment`` and the
per-rule helpers below), testable without a database (see test_reference.py).

Usage::

    python reference_scoring.py --database-url postgres://postgres@127.0.0.1:5432/DB \
        --as-of 2026-11-23 --out result.csv [--window-months 12] [--abc-a 0.5] \
        [--abc-b 0.8] [--xyz-x 0.10] [--xyz-y 0.25] [--xyz-min-months 3] \
        [--lifecycle-months 3] [--k 5] [--seed 42] [--n-init 5]

Prints one JSON line with counts, the k-means inertia and timings, and writes a
CSV sorted by client_id (empty cell = "none").
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from sklearn.cluster import KMeans

CSV_COLUMNS = [
    "client_id",
    "window_revenue",
    "abc",
    "xyz",
    "cv",
    "recency_days",
    "frequency",
    "monetary",
    "rfm_code",
    "lifecycle",
    "cluster",
]
FEATURES = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_ticket",
    "purchase_interval_days",
    "product_lines",
]
LIFECYCLE = ["potential", "new", "regular", "restored", "lost"]


@dataclass(frozen=True)
class Params:
    as_of: dt.date
    window_months: int = 12
    abc_a: float = 0.5
    abc_b: float = 0.8
    xyz_x: float = 0.10
    xyz_y: float = 0.25
    xyz_min_months: int = 3
    lifecycle_months: int = 3
    k: int = 5
    seed: int = 42
    n_init: int = 5


# --------------------------------------------------------------------------- dates


def as_datetime(values: pd.Series) -> pd.Series:
    return values if pd.api.types.is_datetime64_dtype(values) else pd.to_datetime(values)


def month_number(values) -> np.ndarray:
    """Calendar month as an integer (months since 1970-01) for datetime-like values."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):  # convert the few categories only
        return month_number(pd.to_datetime(values.cat.categories))[values.cat.codes.to_numpy()]
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.datetime64):
        values = values.astype("datetime64[ns]")
    return values.astype("datetime64[M]").astype(np.int64)


def window_bounds(as_of: dt.date, window_months: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The `window_months` full calendar months before as_of's month (inclusive bounds)."""
    month_start = pd.Timestamp(as_of).to_period("M").to_timestamp()
    start = month_start - pd.DateOffset(months=window_months)
    end = month_start - pd.Timedelta(days=1)
    return start, end


def lifecycle_bounds(as_of: dt.date, months: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(D - P months, D - 2P months), calendar arithmetic clamped to the month's end."""
    d = pd.Timestamp(as_of)
    return d - pd.DateOffset(months=months), d - pd.DateOffset(months=2 * months)


# --------------------------------------------------------------------- rule helpers


def fraction_to_bp(fraction: float) -> int:
    """A threshold given as a fraction (0.8) in basis points (8000)."""
    return int(round(fraction * 10_000))


def abc_classes(revenue: pd.Series, a: float, b: float) -> pd.Series:
    """ABC over clients with revenue > 0 (others get NA).

    prior share = revenue of all clients with strictly greater revenue / total.
    A if prior share < a, B if < b, else C; compared exactly in integers as
    prior * 10000 < bp * total, i.e. prior < ceil(bp * total / 10000).
    """
    revenue = revenue.astype(np.int64)
    classed = revenue[revenue > 0]
    out = pd.Series(pd.NA, index=revenue.index, dtype="string")
    if classed.empty:
        return out
    total = int(classed.sum())  # Python int: no overflow in bp * total
    per_value = classed.groupby(classed).sum().sort_index(ascending=False)
    prior_by_value = per_value.cumsum().shift(1, fill_value=0)
    prior = classed.map(prior_by_value).to_numpy(np.int64)
    cut_a = -(-fraction_to_bp(a) * total // 10_000)
    cut_b = -(-fraction_to_bp(b) * total // 10_000)
    out[(revenue > 0).to_numpy()] = np.where(prior < cut_a, "A", np.where(prior < cut_b, "B", "C"))
    return out


def xyz_classes(
    series: np.ndarray, start: np.ndarray, eligible: np.ndarray, x: float, y: float, min_months: int
) -> tuple[np.ndarray, np.ndarray]:
    """XYZ from a dense (clients x window months) int64 revenue matrix.

    start[i] is the index of the first month of client i's series (month of its
    first-ever purchase, or 0 for the window start if that is later); eligible
    marks clients that may get a class at all (purchased, not new). A class
    needs >= min_months months and a positive sum. CV = population std / mean.
    Returns (classes as object array with None, cv as float64 with NaN).
    """
    n, width = series.shape
    cls = np.full(n, None, dtype=object)
    cv = np.full(n, np.nan)
    n_months = width - start
    ok = eligible & (n_months >= max(min_months, 1))
    rows = np.flatnonzero(ok)
    in_series = np.arange(width)[None, :] >= start[rows, None]
    values = np.where(in_series, series[rows], 0)
    total = values.sum(axis=1)  # exact int64
    positive = total > 0
    rows, in_series, values, total = rows[positive], in_series[positive], values[positive], total[positive]
    months = n_months[rows].astype(np.float64)
    mean = total / months
    var = np.where(in_series, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / months
    cv[rows] = np.sqrt(var) / mean
    cls[rows] = np.where(cv[rows] <= x, "X", np.where(cv[rows] <= y, "Y", "Z"))
    return cls, cv


def rfm_scores(recency_days: pd.Series, frequency: pd.Series, monetary: pd.Series) -> pd.DataFrame:
    """1 + floor(5 w / n), capped at 5, w = number of scored clients strictly worse.

    Worse recency = more days; worse frequency/monetary = smaller value.
    """
    n = len(recency_days)

    def score(worse: pd.Series) -> np.ndarray:
        w = worse.to_numpy(np.int64)
        return np.minimum(1 + (5 * w) // max(n, 1), 5)

    r = score(recency_days.rank(method="min", ascending=False) - 1)
    f = score(frequency.rank(method="min", ascending=True) - 1)
    m = score(monetary.rank(method="min", ascending=True) - 1)
    code = pd.Series(100 * r + 10 * f + m, index=recency_days.index).astype("string")
    return pd.DataFrame({"r": r, "f": f, "m": m, "rfm_code": code}, index=recency_days.index)


def lifecycle_status(
    first_ever: pd.Series, last_ever: pd.Series, any_in_previous: pd.Series, current_start, previous_start
) -> pd.Series:
    """potential/new/regular/restored/lost from first/last purchase up to D.

    current period C = (current_start, D], previous V = (previous_start, current_start];
    any_in_previous says whether some purchase falls in V.
    """
    never = first_ever.isna()
    new = first_ever > current_start
    in_current = last_ever > current_start
    status = np.select(
        [never, new, in_current & any_in_previous, in_current & ~any_in_previous & (first_ever <= previous_start)],
        ["potential", "new", "regular", "restored"],
        default="lost",
    )
    return pd.Series(pd.Categorical(status, categories=LIFECYCLE), index=first_ever.index)


def standardise(features: np.ndarray) -> np.ndarray:
    """z = (x - mean) / population std; a constant feature becomes 0."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    constant = (std == 0) | (x.max(axis=0) == x.min(axis=0)) if len(x) else np.ones(x.shape[1], bool)
    return np.divide(x - mean, std, out=np.zeros_like(x), where=~constant[None, :])


# ----------------------------------------------------------------------- the whole


def segment(monthly: pd.DataFrame, clients: pd.DataFrame, product_lines: pd.DataFrame, p: Params) -> pd.DataFrame:
    """All classes and the k-means features for the population, indexed by client_id (sorted).

    monthly: the Q1 aggregate, one row per (client_id, calendar month) with lines
      on or before D: month, revenue, documents (distinct purchase documents),
      first_purchase, last_purchase (NaT when the month has no purchase).
    clients: id, known_since.   product_lines: client_id, product_lines (Q2).
    """
    d = pd.Timestamp(p.as_of)
    w_start, w_end = window_bounds(p.as_of, p.window_months)
    ws, we = month_number([w_start])[0], month_number([w_end])[0]
    width = int(we - ws + 1)
    cur_start, prev_start = lifecycle_bounds(p.as_of, p.lifecycle_months)

    # population: known on or before D, plus anyone with a line on or before D
    # (monthly holds only lines on or before D, as Q1 does)
    ids = monthly["client_id"]
    line_ids = ids.cat.categories if isinstance(ids.dtype, pd.CategoricalDtype) else pd.Index(ids.unique())
    known = as_datetime(clients["known_since"]) <= d
    population = pd.Index(clients.loc[known, "id"]).union(line_ids).sort_values()
    population.name = "client_id"
    n = len(population)

    # one pass over the per-month rows: all-history and window aggregates per client
    months = month_number(monthly["month"])
    in_window = (months >= ws) & (months <= we)
    first, last = as_datetime(monthly["first_purchase"]), as_datetime(monthly["last_purchase"])
    cid = pd.Categorical(ids, categories=population)
    m = monthly.assign(
        cid=cid,
        first_purchase=first,
        last_purchase=last,
        w_revenue=np.where(in_window, monthly["revenue"].to_numpy(np.int64), 0),
        w_documents=np.where(in_window, monthly["documents"].to_numpy(np.int64), 0),
        w_first=np.where(in_window, first.to_numpy(), np.datetime64("NaT")),
        w_last=np.where(in_window, last.to_numpy(), np.datetime64("NaT")),
        # a purchase in V = (prev_start, cur_start]: exact from the month's min/max
        # because V's two ends never fall in the same calendar month
        in_previous=(first <= cur_start) & (last > prev_start),
    )
    per_client = m.groupby("cid", observed=False).agg(
        first_ever=("first_purchase", "min"),
        last_ever=("last_purchase", "max"),
        window_revenue=("w_revenue", "sum"),
        frequency=("w_documents", "sum"),
        first_in_window=("w_first", "min"),
        last_in_window=("w_last", "max"),
        in_previous=("in_previous", "any"),
    )
    per_client.index = population

    out = pd.DataFrame(index=population)
    out["window_revenue"] = per_client["window_revenue"].astype(np.int64)
    first_ever, last_ever = per_client["first_ever"], per_client["last_ever"]
    frequency = per_client["frequency"].to_numpy(np.int64)

    # lifecycle
    out["lifecycle"] = lifecycle_status(
        first_ever, last_ever, per_client["in_previous"].astype(bool), cur_start, prev_start
    )

    # ABC
    out["abc"] = abc_classes(out["window_revenue"], p.abc_a, p.abc_b)

    # XYZ on a dense clients x window-months matrix
    series = np.zeros((n, width), dtype=np.int64)
    codes = np.asarray(cid.codes, dtype=np.int64)
    series[codes[in_window], months[in_window] - ws] = monthly["revenue"].to_numpy(np.int64)[in_window]
    purchased = first_ever.notna().to_numpy()
    first_month = np.where(purchased, month_number(first_ever.fillna(w_start)), ws)
    start = np.maximum(first_month, ws) - ws
    eligible = purchased & (out["lifecycle"] != "new").to_numpy()
    xyz, cv = xyz_classes(series, start, eligible, p.xyz_x, p.xyz_y, p.xyz_min_months)
    del series
    out["xyz"] = pd.array(xyz, dtype="string")
    out["cv"] = cv

    # RFM over clients with a purchase document in the window
    scored = frequency >= 1
    recency = (d - last_ever).dt.days
    rfm = rfm_scores(
        recency[scored].astype(np.int64),
        pd.Series(frequency[scored], index=population[scored]),
        out["window_revenue"][scored],
    )
    out["recency_days"] = recency.where(scored).astype("Int64")
    out["frequency"] = pd.Series(frequency, index=population).where(scored).astype("Int64")
    out["monetary"] = out["window_revenue"].where(scored).astype("Int64")
    out["rfm_code"] = pd.Series(pd.NA, index=population, dtype="string")
    out.loc[scored, "rfm_code"] = rfm["rfm_code"].to_numpy()

    # k-means features, for clients with window revenue > 0
    days_in_window = (w_end - w_start).days + 1
    span = (per_client["last_in_window"] - per_client["first_in_window"]).dt.days.to_numpy(np.float64)
    freq_f = frequency.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_ticket"] = out["window_revenue"].to_numpy(np.float64) / freq_f
        out["purchase_interval_days"] = np.where(frequency > 1, span / (freq_f - 1), float(days_in_window))
    pl = product_lines.set_index(product_lines["client_id"].astype(str))["product_lines"]
    out["product_lines"] = pl.reindex(population).fillna(0).to_numpy(np.int64)
    out["clustered"] = out["window_revenue"].to_numpy() > 0
    return out


def cluster(out: pd.DataFrame, p: Params) -> tuple[pd.Series, float | None, int]:
    """k-means on the standardised features of the clustered clients.

    Returns (labels as Int64 over the whole population, inertia, effective k).
    With fewer clustered clients than k, k is lowered to their number.
    """
    mask = out["clustered"].to_numpy()
    labels = pd.Series(pd.NA, index=out.index, dtype="Int64")
    n = int(mask.sum())
    if n == 0:
        return labels, None, 0
    k = min(p.k, n)
    x = out.loc[mask, FEATURES].to_numpy(np.float64)
    z = standardise(x)
    km = KMeans(n_clusters=k, init="k-means++", n_init=p.n_init, random_state=p.seed, max_iter=300, tol=1e-4)
    km.fit(z)
    labels.loc[mask] = km.labels_
    return labels, float(km.inertia_), k


def partition_inertia(out: pd.DataFrame, given: pd.Series) -> float:
    """Inertia of another implementation's partition on the same standardised
    features: k-means optima are not unique, so a different partition is only
    a disagreement if it is worse than ours."""
    mask = out["clustered"].to_numpy()
    z = standardise(out.loc[mask, FEATURES].to_numpy(np.float64))
    labels = given.reindex(out.index[mask]).to_numpy()
    if pd.isna(labels).any():
        raise ValueError("the given labels miss clustered clients")
    total = 0.0
    for label in np.unique(labels):
        members = z[labels == label]
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return total


def to_csv(out: pd.DataFrame, labels: pd.Series, path: str) -> None:
    frame = out.assign(cluster=labels).reset_index()[CSV_COLUMNS]
    # cv is the only float column; every other one is integer or text
    frame.to_csv(path, index=False, na_rep="", float_format="%.6f")


# ---------------------------------------------------------------------------- DB

Q1 = """
SELECT client_id, date_trunc('month', business_date)::date AS month, sum(amount_minor) AS revenue,
       count(DISTINCT document_id) FILTER (WHERE amount_minor > 0) AS documents,
       min(business_date) FILTER (WHERE amount_minor > 0) AS first_purchase,
       max(business_date) FILTER (WHERE amount_minor > 0) AS last_purchase
FROM transaction_lines WHERE business_date <= {d} GROUP BY 1, 2
"""
Q2 = """
SELECT t.client_id, count(DISTINCT p.product_line_id) AS product_lines
FROM transaction_lines t JOIN products p ON p.id = t.product_id
WHERE t.business_date BETWEEN {ws} AND {we} AND t.amount_minor > 0 GROUP BY 1
"""
QC = "SELECT id, known_since FROM clients"


def copy_frame(conn, query, names: list[str], dtype: dict, dates: list[str]) -> pd.DataFrame:
    """Run `query` as COPY ... TO STDOUT (csv) and parse it with pandas."""
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buf.write(chunk)
    if buf.tell() == 0:  # read_csv refuses an empty input
        frame = pd.DataFrame({name: pd.Series([], dtype=dtype[name]) for name in names})
    else:
        buf.seek(0)
        # only an empty field is NULL: ids such as "NA" or "null" stay text
        frame = pd.read_csv(buf, names=names, header=None, dtype=dtype, engine="c", keep_default_na=False, na_values=[""])
    for col in dates:
        frame[col] = pd.to_datetime(frame[col], format="%Y-%m-%d")
    return frame


def read_inputs(database_url: str, p: Params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    w_start, w_end = window_bounds(p.as_of, p.window_months)
    with psycopg.connect(database_url, autocommit=True) as conn:
        monthly = copy_frame(
            conn,
            sql.SQL(Q1).format(d=sql.Literal(p.as_of)).as_string(conn),
            ["client_id", "month", "revenue", "documents", "first_purchase", "last_purchase"],
            {"client_id": "category", "month": "category", "revenue": np.int64, "documents": np.int64,
             "first_purchase": str, "last_purchase": str},
            ["first_purchase", "last_purchase"],
        )
        product_lines = copy_frame(
            conn,
            sql.SQL(Q2).format(ws=sql.Literal(w_start.date()), we=sql.Literal(w_end.date())).as_string(conn),
            ["client_id", "product_lines"],
            {"client_id": str, "product_lines": np.int64},
            [],
        )
        clients = copy_frame(conn, QC, ["id", "known_since"], {"id": str, "known_since": str}, ["known_since"])
    return monthly, clients, product_lines


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> tuple[argparse.Namespace, Params]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    ap.add_argument("--out", required=True)
    ap.add_argument("--window-months", type=int, default=12)
    ap.add_argument("--abc-a", type=float, default=0.5)
    ap.add_argument("--abc-b", type=float, default=0.8)
    ap.add_argument("--xyz-x", type=float, default=0.10)
    ap.add_argument("--xyz-y", type=float, default=0.25)
    ap.add_argument("--xyz-min-months", type=int, default=3)
    ap.add_argument("--lifecycle-months", type=int, default=3)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--n-init", type=int, default=5)
    ap.add_argument("--given-labels", help="CSV client_id,cluster of another implementation: report its inertia")
    a = ap.parse_args(argv)
    if min(a.window_months, a.lifecycle_months, a.k, a.n_init) < 1:
        ap.error("--window-months, --lifecycle-months, --k and --n-init must be >= 1")
    if not 0 <= a.abc_a <= a.abc_b <= 1 or not 0 <= a.xyz_x <= a.xyz_y:
        ap.error("thresholds must satisfy 0 <= abc-a <= abc-b <= 1 and 0 <= xyz-x <= xyz-y")
    p = Params(
        as_of=a.as_of, window_months=a.window_months, abc_a=a.abc_a, abc_b=a.abc_b, xyz_x=a.xyz_x,
        xyz_y=a.xyz_y, xyz_min_months=a.xyz_min_months, lifecycle_months=a.lifecycle_months,
        k=a.k, seed=a.seed, n_init=a.n_init,
    )
    return a, p


def main(argv=None) -> int:
    args, p = parse_args(argv)
    t0 = time.perf_counter()
    monthly, clients, product_lines = read_inputs(args.database_url, p)
    t1 = time.perf_counter()
    out = segment(monthly, clients, product_lines, p)
    del monthly, clients, product_lines
    t2 = time.perf_counter()
    labels, inertia, k = cluster(out, p)
    t3 = time.perf_counter()
    to_csv(out, labels, args.out)
    t4 = time.perf_counter()
    report = {
        "clients": int(len(out)),
        "classed_abc": int(out["abc"].notna().sum()),
        "rfm_scored": int(out["rfm_code"].notna().sum()),
        "clustered": int(out["clustered"].sum()),
        "k": k,
        "inertia": inertia,
        "seconds": {
            "read": round(t1 - t0, 3),
            "compute": round(t2 - t1, 3),
            "kmeans": round(t3 - t2, 3),
            "write": round(t4 - t3, 3),
            "total": round(t4 - t0, 3),
        },
        # peak resident set of this process so far (ru_maxrss is in KiB on Linux)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.given_labels:
        given = pd.read_csv(args.given_labels, dtype={"client_id": str}).set_index("client_id")["cluster"]
        report["given_inertia"] = partition_inertia(out, given)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
