-- Each client's activity per calendar month, kept at import like the other
-- purchase rollups (store/rollups.rs), so that the recompute reads one row
-- per client instead of grouping every transaction line each night
-- (docs/benchmarks.md).
-- Both columns pack fixed-width big-endian records (written by
-- store::rollups, read by store::aggregates): arrays of a million rows took
-- about 10 s just to send, element by element. Days count from 1970-01-01.
CREATE TABLE client_monthly_activity (
    client_id  text PRIMARY KEY,
    -- Per month with a line, ascending, 28 bytes: month (int4 days, its
    -- first day), revenue net of returns (int8 minor units), distinct
    -- purchase documents (int8), first and last purchase (int4 days; the
    -- smallest int4 when the month holds returns only).
    months     bytea NOT NULL,
    -- Per distinct product bought (a positive line) per month, ascending by
    -- month then product: month (int4 days), id length in bytes (int2), id.
    products   bytea NOT NULL
);

-- Lines already stored: every client with a line is marked for the
-- background refresh, which builds its row (10 000 clients a mark, as
-- store::rollups::mark_moved_products cuts them); until then the recompute
-- reads a marked client's months from its lines.
INSERT INTO import_marks (clients, days)
SELECT array_agg(client_id ORDER BY client_id), '{}'
FROM (SELECT client_id, (row_number() OVER (ORDER BY client_id) - 1) / 10000 AS part
      FROM (SELECT DISTINCT client_id FROM transaction_lines) c) numbered
GROUP BY part;
