-- Surveys: one per product and one general (product_id ''); every change is
-- a new version, so stored answers keep the questions they answered.
CREATE TABLE surveys (
    id          text PRIMARY KEY,
    product_id  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE survey_versions (
    survey_id   text NOT NULL REFERENCES surveys (id),
    version     integer NOT NULL CHECK (version > 0),
    name        text NOT NULL,
    asks_nps    boolean NOT NULL,
    asks_csat   boolean NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (survey_id, version)
);

CREATE TABLE survey_items (
    survey_id   text NOT NULL,
    version     integer NOT NULL,
    position    smallint NOT NULL,
    code        text NOT NULL,
    text        text NOT NULL,
    touchpoint  text NOT NULL,
    PRIMARY KEY (survey_id, version, code),
    FOREIGN KEY (survey_id, version) REFERENCES survey_versions (survey_id, version)
);

-- An invitation keeps the client's branch, employee and ABC class as of its
-- creation; statistics count on them. Its link token is stored only as a
-- SHA-256 hash.
CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    client_id        text NOT NULL,
    branch_id        text NOT NULL,
    employee_id      text NOT NULL DEFAULT '',
    abc_class        smallint NOT NULL DEFAULT 0,
    product_id       text NOT NULL DEFAULT '',
    survey_id        text NOT NULL,
    survey_version   integer NOT NULL,
    reason           smallint NOT NULL,
    channel          smallint NOT NULL,
    purchase_date    date,
    token_hash       bytea NOT NULL UNIQUE,
    request_id       text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    failed_at        timestamptz,
    delivery_detail  text NOT NULL DEFAULT '',
    opened_at        timestamptz,
    answered_at      timestamptz,
    print_batch_id   uuid,
    FOREIGN KEY (survey_id, survey_version) REFERENCES survey_versions (survey_id, version)
);
-- A client is asked about its first purchase of a product once (reason 2 = FIRST_PURCHASE).
CREATE UNIQUE INDEX invitations_first_purchase_once ON invitations (client_id, product_id) WHERE reason = 2;
CREATE INDEX invitations_client_idx ON invitations (client_id, created_at);
CREATE INDEX invitations_list_idx ON invitations (created_at DESC, id DESC);
CREATE INDEX invitations_sent_idx ON invitations (sent_at) WHERE sent_at IS NOT NULL;
-- Printed forms waiting for export (channel 2 = PRINTED_FORM).
CREATE INDEX invitations_to_print_idx ON invitations (created_at, id) WHERE channel = 2 AND print_batch_id IS NULL;
CREATE INDEX invitations_batch_idx ON invitations (print_batch_id) WHERE print_batch_id IS NOT NULL;
CREATE INDEX invitations_request_idx ON invitations (request_id) WHERE request_id IS NOT NULL;

-- One response per invitation; the invitation's facts are copied so that
-- statistics read one table.
CREATE TABLE responses (
    id              uuid PRIMARY KEY,
    invitation_id   uuid NOT NULL UNIQUE REFERENCES invitations (id),
    external_id     text UNIQUE,
    source          smallint NOT NULL,
    client_id       text NOT NULL,
    branch_id       text NOT NULL,
    employee_id     text NOT NULL,
    abc_class       smallint NOT NULL,
    product_id      text NOT NULL,
    survey_id       text NOT NULL,
    survey_version  integer NOT NULL,
    answered_on     date NOT NULL,
    nps             smallint CHECK (nps BETWEEN 0 AND 10),
    csat            smallint CHECK (csat BETWEEN 1 AND 5),
    comment         text NOT NULL DEFAULT '',
    recorded_by     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX responses_answered_idx ON responses (answered_on);
CREATE INDEX responses_client_idx ON responses (client_id, answered_on);
CREATE INDEX responses_list_idx ON responses (created_at DESC, id DESC);

CREATE TABLE response_items (
    response_id  uuid NOT NULL REFERENCES responses (id),
    code         text NOT NULL,
    touchpoint   text NOT NULL,
    score        smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    PRIMARY KEY (response_id, code)
);

-- Complaints and the history of every change.
CREATE TABLE complaints (
    id                   uuid PRIMARY KEY,
    request_id           text UNIQUE,
    client_id            text NOT NULL,
    branch_id            text NOT NULL,
    employee_id          text NOT NULL DEFAULT '',
    product_id           text NOT NULL DEFAULT '',
    source               smallint NOT NULL,
    response_id          uuid UNIQUE REFERENCES responses (id),
    description          text NOT NULL,
    state                smallint NOT NULL,
    owner                text NOT NULL DEFAULT '',
    root_cause_category  smallint NOT NULL DEFAULT 0,
    cause                text NOT NULL DEFAULT '',
    client_informed      boolean NOT NULL DEFAULT false,
    -- The current state's deadline and its length (the escalation step).
    due_at               timestamptz,
    deadline_ms          bigint NOT NULL,
    escalation_level     smallint NOT NULL DEFAULT 0,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL,
    closed_at            timestamptz
);
CREATE INDEX complaints_list_idx ON complaints (created_at, id);
CREATE INDEX complaints_open_due_idx ON complaints (due_at) WHERE closed_at IS NULL;

CREATE TABLE complaint_events (
    complaint_id      uuid NOT NULL REFERENCES complaints (id),
    sequence          integer NOT NULL,
    kind              smallint NOT NULL,
    from_state        smallint NOT NULL DEFAULT 0,
    to_state          smallint NOT NULL DEFAULT 0,
    actor             text NOT NULL,
    owner             text NOT NULL DEFAULT '',
    note              text NOT NULL DEFAULT '',
    escalation_level  smallint NOT NULL DEFAULT 0,
    at                timestamptz NOT NULL,
    PRIMARY KEY (complaint_id, sequence)
);
-- Escalations (kind 4) per period for the KPI facts.
CREATE INDEX complaint_escalations_idx ON complaint_events (at) WHERE kind = 4;

-- Transactional outbox: written in the same transaction as the change it
-- announces, under an advisory lock so cursors grow in commit order.
CREATE TABLE outbox (
    cursor      bigserial PRIMARY KEY,
    topic       smallint NOT NULL,
    branch_id   text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
