-- Scorecards: per role, versioned, in force from an effective date.
CREATE TABLE scorecards (
    role               text        NOT NULL,
    version            integer     NOT NULL CHECK (version > 0),
    effective_from     date        NOT NULL,
    floor_bp           integer     NOT NULL CHECK (floor_bp >= 0),
    cap_bp             integer     NOT NULL CHECK (cap_bp >= 10000),
    accelerator        double precision NOT NULL CHECK (accelerator >= 0),
    -- [[attainment_bp, credited_bp], ...]
    payout_curve       jsonb       NOT NULL DEFAULT '[]',
    monthly_base_bonus bigint      NOT NULL CHECK (monthly_base_bonus >= 0),
    currency           text        NOT NULL,
    created_at         timestamptz NOT NULL,
    created_by         text        NOT NULL,
    PRIMARY KEY (role, version)
);

CREATE TABLE scorecard_lines (
    role      text    NOT NULL,
    version   integer NOT NULL,
    kpi_code  text    NOT NULL,
    weight_bp integer NOT NULL CHECK (weight_bp > 0),
    plan      double precision NOT NULL CHECK (plan > 0),
    position  integer NOT NULL,
    PRIMARY KEY (role, version, kpi_code),
    FOREIGN KEY (role, version) REFERENCES scorecards ON DELETE CASCADE
);

-- The year's sales plan (one per year; a new one replaces it).
CREATE TABLE sales_plans (
    year                  integer     PRIMARY KEY,
    annual_target         bigint      NOT NULL,
    currency              text        NOT NULL,
    growth_factor         double precision NOT NULL,
    history_years         integer     NOT NULL,
    allocation            text        NOT NULL,
    seasonal_coefficients double precision[] NOT NULL,
    monthly               bigint[]    NOT NULL,
    created_at            timestamptz NOT NULL,
    created_by            text        NOT NULL
);

CREATE TABLE sales_plan_employees (
    year        integer  NOT NULL REFERENCES sales_plans ON DELETE CASCADE,
    employee_id text     NOT NULL,
    branch_id   text     NOT NULL,
    share_bp    integer  NOT NULL,
    monthly     bigint[] NOT NULL,
    PRIMARY KEY (year, employee_id)
);

-- A computed period. Versions of one period: at most one draft, the latest.
CREATE TABLE bonus_periods (
    period_from  date        NOT NULL,
    period_to    date        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    status       text        NOT NULL CHECK (status IN ('draft', 'approved', 'exported', 'superseded')),
    computed_at  timestamptz NOT NULL,
    computed_by  text        NOT NULL,
    approved_at  timestamptz,
    approved_by  text,
    exported_at  timestamptz,
    currency     text        NOT NULL,
    PRIMARY KEY (period_from, period_to, version)
);

CREATE UNIQUE INDEX bonus_periods_one_draft ON bonus_periods (period_from, period_to) WHERE status = 'draft';

-- The facts each employee had in the period, as the owning services reported them.
CREATE TABLE period_facts (
    period_from date    NOT NULL,
    period_to   date    NOT NULL,
    version     integer NOT NULL,
    employee_id text    NOT NULL,
    branch_id   text    NOT NULL,
    full_name   text    NOT NULL,
    role        text    NOT NULL,
    team_lead_id text   NOT NULL,
    active      boolean NOT NULL,
    -- {fact key: value}
    facts       jsonb   NOT NULL,
    PRIMARY KEY (period_from, period_to, version, employee_id),
    FOREIGN KEY (period_from, period_to, version) REFERENCES bonus_periods ON DELETE CASCADE
);

CREATE TABLE period_fact_sources (
    period_from date    NOT NULL,
    period_to   date    NOT NULL,
    version     integer NOT NULL,
    employee_id text    NOT NULL,
    fact        text    NOT NULL,
    kind        text    NOT NULL,
    source_id   text    NOT NULL,
    FOREIGN KEY (period_from, period_to, version, employee_id) REFERENCES period_facts ON DELETE CASCADE
);

CREATE INDEX period_fact_sources_by_employee ON period_fact_sources (period_from, period_to, version, employee_id);

CREATE TABLE bonus_lines (
    period_from         date    NOT NULL,
    period_to           date    NOT NULL,
    version             integer NOT NULL,
    employee_id         text    NOT NULL,
    branch_id           text    NOT NULL,
    full_name           text    NOT NULL,
    role                text    NOT NULL,
    scorecard_version   integer NOT NULL,
    team_member_ids     text[]  NOT NULL,
    weighted_attainment double precision NOT NULL,
    base_bonus          bigint  NOT NULL,
    bonus               bigint  NOT NULL,
    rank                integer NOT NULL,
    -- The KPI results as computed (KpiResult fields).
    results             jsonb   NOT NULL,
    PRIMARY KEY (period_from, period_to, version, employee_id),
    FOREIGN KEY (period_from, period_to, version) REFERENCES bonus_periods ON DELETE CASCADE
);

CREATE INDEX bonus_lines_by_branch ON bonus_lines (period_from, period_to, version, branch_id);
