-- ERP transaction lines. References are validated by the service before the
-- bulk insert, so the table carries no foreign keys that would slow ingestion.
CREATE TABLE transaction_lines (
    id             text PRIMARY KEY,
    document_id    text NOT NULL,
    client_id      text NOT NULL,
    product_id     text NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor <> 0),
    currency       text NOT NULL,
    business_date  date NOT NULL,
    branch_id      text NOT NULL,
    employee_id    text NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transaction_lines_client_date_idx ON transaction_lines (client_id, business_date);

-- The latest explained score per client; written by the recompute batch.
CREATE TABLE client_scores (
    client_id             text PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    as_of                 date NOT NULL,
    score                 double precision NOT NULL CHECK (score BETWEEN 0 AND 100),
    score_class           text NOT NULL,
    abc_class             smallint NOT NULL DEFAULT 0,
    xyz_class             smallint NOT NULL DEFAULT 0,
    rfm_code              text NOT NULL DEFAULT '',
    rfm_segment           text NOT NULL DEFAULT '',
    lifecycle_status      smallint NOT NULL DEFAULT 0,
    components            jsonb NOT NULL DEFAULT '[]',
    window_revenue_minor  bigint NOT NULL DEFAULT 0,
    currency              text NOT NULL,
    settings_version      bigint NOT NULL,
    computed_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_scores_class_idx ON client_scores (abc_class, lifecycle_status);
