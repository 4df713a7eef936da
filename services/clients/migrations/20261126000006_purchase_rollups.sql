-- What GetClientFacts needs, kept at import instead of aggregated from every
-- transaction line on each call (a year's report over a million clients
-- took 86-91 s that way: docs/benchmarks.md). Only purchases (lines with a
-- positive amount) count in all three. Ingestion only records which clients
-- and days a batch touched; reads and a background task refresh them
-- (store/rollups.rs).

-- Each client's purchase days, sorted, and its first purchase document
-- (the earliest day, then the smallest document id).
CREATE TABLE client_purchase_history (
    client_id          text PRIMARY KEY,
    purchase_days      date[] NOT NULL,
    first_document_id  text NOT NULL
);

-- The first day each client bought each product line.
CREATE TABLE client_line_firsts (
    client_id        text NOT NULL,
    product_line_id  text NOT NULL,
    first_day        date NOT NULL,
    PRIMARY KEY (client_id, product_line_id)
);

-- Purchases per day, branch, seller and kind: 0 primary (the client's first
-- document), 1 repeat (its product line bought on an earlier day), 2 new
-- direction (the rest).
CREATE TABLE daily_sales (
    day           date NOT NULL,
    branch_id     text NOT NULL,
    employee_id   text NOT NULL,
    kind          smallint NOT NULL CHECK (kind BETWEEN 0 AND 2),
    documents     bigint NOT NULL,
    amount_minor  bigint NOT NULL,
    PRIMARY KEY (day, branch_id, employee_id, kind)
);

-- The clients and days of each committed import batch not yet refreshed:
-- appended in the batch's transaction, so it is visible exactly when the
-- batch's lines are.
CREATE TABLE import_marks (
    id       bigserial PRIMARY KEY,
    clients  text[] NOT NULL,
    days     date[] NOT NULL
);

-- Days whose daily_sales must be recomputed before use.
CREATE TABLE stale_sales_days (
    day  date PRIMARY KEY
);

-- A stale day is recomputed whole.
CREATE INDEX transaction_lines_date_idx ON transaction_lines (business_date);

-- Lines already stored (the same statements as store::rollups::rebuild).
INSERT INTO client_purchase_history (client_id, purchase_days, first_document_id)
SELECT client_id, array_agg(DISTINCT business_date ORDER BY business_date),
       (array_agg(document_id ORDER BY business_date, document_id))[1]
FROM transaction_lines WHERE amount_minor > 0 GROUP BY client_id;

INSERT INTO client_line_firsts (client_id, product_line_id, first_day)
SELECT t.client_id, p.product_line_id, min(t.business_date)
FROM transaction_lines t JOIN products p ON p.id = t.product_id
WHERE t.amount_minor > 0 GROUP BY 1, 2;

INSERT INTO daily_sales (day, branch_id, employee_id, kind, documents, amount_minor)
SELECT t.business_date, t.branch_id, t.employee_id,
       CASE WHEN t.document_id = h.first_document_id THEN 0 WHEN l.first_day < t.business_date THEN 1 ELSE 2 END,
       count(DISTINCT t.document_id), sum(t.amount_minor)
FROM transaction_lines t
JOIN products p ON p.id = t.product_id
JOIN client_purchase_history h ON h.client_id = t.client_id
JOIN client_line_firsts l ON l.client_id = t.client_id AND l.product_line_id = p.product_line_id
WHERE t.amount_minor > 0
GROUP BY 1, 2, 3, 4;
