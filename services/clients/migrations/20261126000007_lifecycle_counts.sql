-- Lifecycle counts per day, week and month, branch and owner, so that a
-- report adds up a few thousand rows instead of replaying every client's
-- purchases (shared/scoring period_to_date: a client's counts as day
-- deltas; services/clients/src/store/lifecycle.rs keeps them). They depend
-- on the lifecycle period P: the service builds them in the background for
-- the P in effect, and until then reports count clients one by one.

-- The P the counts were built with; no row: not built.
CREATE TABLE lifecycle_counts_built (
    only_row          boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    lifecycle_months  integer NOT NULL
);

-- What each client's counts were computed from, so that a change can take
-- its old counts back out.
CREATE TABLE client_lifecycle_basis (
    client_id      text PRIMARY KEY,
    branch_id      text NOT NULL,
    employee_id    text NOT NULL,
    known_since    date NOT NULL,
    purchase_days  date[] NOT NULL
);

-- Day deltas per frame (1 day, 2 ISO week, 3 month): the events and
-- buying of a frame's period to date are the sum of its days' rows; the
-- census (clients, initial_stage, potential) as of a day is the sum of
-- every row of one frame up to it.
CREATE TABLE lifecycle_deltas (
    frame          smallint NOT NULL CHECK (frame BETWEEN 1 AND 3),
    day            date NOT NULL,
    branch_id      text NOT NULL,
    employee_id    text NOT NULL,
    acquired       bigint NOT NULL,
    lost           bigint NOT NULL,
    restored       bigint NOT NULL,
    buying         bigint NOT NULL,
    repeat_buyers  bigint NOT NULL,
    clients        bigint NOT NULL,
    initial_stage  bigint NOT NULL,
    potential      bigint NOT NULL,
    PRIMARY KEY (frame, day, branch_id, employee_id)
);

-- The same summed per week and per month (period_start = its first day).
CREATE TABLE lifecycle_totals (LIKE lifecycle_deltas INCLUDING ALL);
ALTER TABLE lifecycle_totals RENAME COLUMN day TO period_start;

-- A client's branch, owner or registration date changed: its lifecycle
-- counts are recounted, its purchase rollups are not.
ALTER TABLE import_marks ADD COLUMN purchases_changed boolean NOT NULL DEFAULT true;
