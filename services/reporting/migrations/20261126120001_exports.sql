-- The audit of report exports: who exported which report with which
-- filters and scope, how big the file was, and whether it arrived.
-- Enumerations are stored by their proto names.
CREATE TABLE exports (
    id               uuid        PRIMARY KEY,  -- v7: ordered by creation
    report           text        NOT NULL CHECK (report IN (
                         'REPORT_KIND_PERIOD_REPORT', 'REPORT_KIND_KPI_LEADERBOARD', 'REPORT_KIND_LOYALTY_REPORT')),
    format           text        NOT NULL CHECK (format IN ('FILE_FORMAT_CSV', 'FILE_FORMAT_XLSX')),
    requested_by     text        NOT NULL,
    role             text        NOT NULL,
    -- The caller's branches; NULL for the whole network.
    scope_branch_ids text[],
    branch_id        text        NOT NULL,
    period_from      date        NOT NULL,
    period_to        date        NOT NULL,
    granularity      text        NOT NULL,
    rows             bigint      NOT NULL CHECK (rows >= 0),
    bytes            bigint      NOT NULL CHECK (bytes >= 0),
    sha256           text        NOT NULL,
    -- A row left 'EXPORT_STATUS_STREAMING' was cut off by a stopped process.
    status           text        NOT NULL CHECK (status IN (
                         'EXPORT_STATUS_STREAMING', 'EXPORT_STATUS_DELIVERED', 'EXPORT_STATUS_INTERRUPTED')),
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    CHECK (period_from <= period_to)
);

-- "My exports", newest first.
CREATE INDEX exports_by_requester ON exports (requested_by, id DESC);
