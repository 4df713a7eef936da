-- Scoring settings are versioned: a version applies to scores as of its
-- effective date or later, until a later version takes over. Version 0 (no
-- row) means the built-in defaults of domain.md.
CREATE TABLE scoring_settings (
    version         bigserial PRIMARY KEY,
    effective_from  date NOT NULL,
    settings        jsonb NOT NULL,
    comment         text NOT NULL DEFAULT '',
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scoring_settings_effective_idx ON scoring_settings (effective_from DESC, version DESC);

-- One row per recompute batch.
CREATE TABLE recompute_runs (
    id                bigserial PRIMARY KEY,
    as_of             date NOT NULL,
    settings_version  bigint NOT NULL,
    requested_by      text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    clients           bigint NOT NULL DEFAULT 0,
    changed           bigint NOT NULL DEFAULT 0,
    clusters          integer NOT NULL DEFAULT 0,
    silhouette        double precision NOT NULL DEFAULT 0
);

-- Cluster profiles of a run, centroids in the features' own units.
CREATE TABLE cluster_profiles (
    run_id                  bigint NOT NULL REFERENCES recompute_runs (id) ON DELETE CASCADE,
    cluster                 integer NOT NULL,
    clients                 bigint NOT NULL,
    revenue_share           double precision NOT NULL,
    recency_days            double precision NOT NULL,
    frequency               double precision NOT NULL,
    monetary                double precision NOT NULL,
    average_ticket          double precision NOT NULL,
    purchase_interval_days  double precision NOT NULL,
    product_lines           double precision NOT NULL,
    label                   text NOT NULL,
    PRIMARY KEY (run_id, cluster)
);

-- A row whenever a client's classes or lifecycle status change (and the
-- first time it is scored); re-running the same date replaces that date's row.
CREATE TABLE client_class_history (
    client_id                  text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    as_of                      date NOT NULL,
    run_id                     bigint NOT NULL REFERENCES recompute_runs (id),
    abc_class                  smallint NOT NULL,
    xyz_class                  smallint NOT NULL,
    rfm_segment                text NOT NULL,
    lifecycle_status           smallint NOT NULL,
    previous_lifecycle_status  smallint NOT NULL,
    score_class                text NOT NULL,
    settings_version           bigint NOT NULL,
    PRIMARY KEY (client_id, as_of)
);

-- The explained score is kept whole (the protobuf the API and the cache
-- serve); the columns beside it are what queries filter and group on.
ALTER TABLE client_scores
    DROP COLUMN components,
    ADD COLUMN run_id bigint REFERENCES recompute_runs (id),
    ADD COLUMN cluster integer,
    ADD COLUMN record bytea NOT NULL DEFAULT '';
