-- Each client's activity per calendar month, kept at import like the other
-- purchase rollups (store/rollups.rs), so that the recompute reads one row
-- per client instead of grouping every transaction line each night
-- (docs/benchmarks.md). Parallel arrays, one element per month with a line,
-- months ascending.
CREATE TABLE client_monthly_activity (
    client_id       text PRIMARY KEY,
    months          date[]   NOT NULL,  -- first days of the months
    revenue_minor   bigint[] NOT NULL,  -- net of returns
    documents       bigint[] NOT NULL,  -- distinct purchase documents
    first_purchase  date[]   NOT NULL,  -- NULL: the month holds returns only
    last_purchase   date[]   NOT NULL,
    -- The distinct products bought (positive lines) each month, as pairs:
    -- product_ids[i] was bought in product_months[i].
    product_ids     text[]   NOT NULL,
    product_months  date[]   NOT NULL
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
