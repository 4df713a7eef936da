-- Pipelines are versioned: a deal keeps the version it was opened in.
CREATE TABLE pipelines (
    id          text NOT NULL,
    version     integer NOT NULL,
    name        text NOT NULL,
    stages      jsonb NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, version)
);

CREATE TABLE loss_reasons (
    code  text PRIMARY KEY,
    name  text NOT NULL
);
INSERT INTO loss_reasons (code, name) VALUES
    ('price', 'Price too high'),
    ('competitor', 'Chose a competitor'),
    ('no_budget', 'No budget'),
    ('no_decision', 'No decision made'),
    ('timing', 'Not the right time'),
    ('no_contact', 'Lost contact'),
    ('product_fit', 'Product does not fit'),
    ('other', 'Other');

-- (created_by, request_id) makes creating calls idempotent per caller.
CREATE TABLE leads (
    id                 text PRIMARY KEY,
    request_id         text NOT NULL,
    created_by         text NOT NULL,
    branch_id          text NOT NULL,
    owner_employee_id  text NOT NULL,
    channel            smallint NOT NULL,
    priority           smallint NOT NULL,
    sla_seconds        bigint NOT NULL,
    received_at        timestamptz NOT NULL,
    first_response_at  timestamptz,
    client_id          text NOT NULL DEFAULT '',
    contact_name       text NOT NULL DEFAULT '',
    deal_id            text,
    UNIQUE (created_by, request_id)
);
CREATE INDEX leads_branch_received_idx ON leads (branch_id, received_at);

CREATE TABLE deals (
    id                 text PRIMARY KEY,
    request_id         text NOT NULL,
    created_by         text NOT NULL,
    client_id          text NOT NULL,
    branch_id          text NOT NULL,
    owner_employee_id  text NOT NULL,
    pipeline_id        text NOT NULL,
    pipeline_version   integer NOT NULL,
    stage              text NOT NULL,
    stage_index        integer NOT NULL,
    probability        smallint NOT NULL,
    status             smallint NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor >= 0),
    currency           text NOT NULL,
    expected_close     date NOT NULL,
    right_person       boolean NOT NULL DEFAULT false,
    right_plan         boolean NOT NULL DEFAULT false,
    right_budget       boolean NOT NULL DEFAULT false,
    right_timeline     boolean NOT NULL DEFAULT false,
    lead_id            text REFERENCES leads (id),
    loss_reason        text REFERENCES loss_reasons (code),
    created_at         timestamptz NOT NULL DEFAULT now(),
    stage_entered_at   timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    FOREIGN KEY (pipeline_id, pipeline_version) REFERENCES pipelines (id, version),
    UNIQUE (created_by, request_id)
);
CREATE INDEX deals_branch_status_idx ON deals (branch_id, status);
CREATE INDEX deals_created_idx ON deals (created_at);

-- Every stage change, as it happened.
CREATE TABLE deal_transitions (
    id              bigserial PRIMARY KEY,
    deal_id         text NOT NULL REFERENCES deals (id),
    from_stage      text NOT NULL,
    to_stage        text NOT NULL,
    to_stage_index  integer NOT NULL,
    by_subject      text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deal_transitions_deal_idx ON deal_transitions (deal_id, id);

CREATE TABLE control_points (
    id                 text PRIMARY KEY,
    deal_id            text NOT NULL REFERENCES deals (id),
    stage              text NOT NULL,
    kind               text NOT NULL,
    due_date           date NOT NULL,
    completed_at       timestamptz,
    owner_employee_id  text NOT NULL,
    branch_id          text NOT NULL
);
CREATE INDEX control_points_open_idx ON control_points (branch_id, due_date) WHERE completed_at IS NULL;

-- Transactional outbox of stage events: written with the change it reports.
CREATE TABLE stage_events (
    cursor      bigserial PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    kind        smallint NOT NULL,
    deal_id     text NOT NULL,
    client_id   text NOT NULL,
    branch_id   text NOT NULL,
    stage       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- How far the Redis relay has published the outbox.
CREATE TABLE stage_event_relay (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    cursor  bigint NOT NULL
);
INSERT INTO stage_event_relay (cursor) VALUES (0);
