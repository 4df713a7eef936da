-- BARS competencies: five behaviour-anchored levels each.
CREATE TABLE competencies (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE competency_anchors (
    competency_id  text NOT NULL REFERENCES competencies (id),
    level          smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    behaviour      text NOT NULL,
    PRIMARY KEY (competency_id, level)
);

CREATE TABLE evaluations (
    id              uuid PRIMARY KEY,
    request_id      text UNIQUE,
    employee_id     text NOT NULL,
    branch_id       text NOT NULL,
    evaluator_kind  smallint NOT NULL,
    evaluator       text NOT NULL,
    evaluated_on    date NOT NULL,
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluations_period_idx ON evaluations (evaluated_on, branch_id, employee_id);

-- A rating keeps the anchor it was given against, in case the scale is reworded.
CREATE TABLE evaluation_ratings (
    evaluation_id  uuid NOT NULL REFERENCES evaluations (id),
    competency_id  text NOT NULL REFERENCES competencies (id),
    level          smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    evidence       text NOT NULL DEFAULT '',
    anchor         text NOT NULL,
    PRIMARY KEY (evaluation_id, competency_id)
);

-- Dialog checklists, versioned like surveys.
CREATE TABLE checklists (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE checklist_versions (
    checklist_id  text NOT NULL REFERENCES checklists (id),
    version       integer NOT NULL CHECK (version > 0),
    name          text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (checklist_id, version)
);

CREATE TABLE checklist_criteria (
    checklist_id  text NOT NULL,
    version       integer NOT NULL,
    position      smallint NOT NULL,
    code          text NOT NULL,
    text          text NOT NULL,
    weight        integer NOT NULL CHECK (weight BETWEEN 1 AND 100),
    PRIMARY KEY (checklist_id, version, code),
    FOREIGN KEY (checklist_id, version) REFERENCES checklist_versions (checklist_id, version)
);

CREATE TABLE dialog_reviews (
    id                 uuid PRIMARY KEY,
    request_id         text UNIQUE,
    checklist_id       text NOT NULL,
    checklist_version  integer NOT NULL,
    employee_id        text NOT NULL,
    branch_id          text NOT NULL,
    dialog_ref         text NOT NULL,
    reviewed_on        date NOT NULL,
    compliance         double precision NOT NULL CHECK (compliance BETWEEN 0 AND 100),
    reviewer           text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (checklist_id, checklist_version) REFERENCES checklist_versions (checklist_id, version)
);
CREATE INDEX dialog_reviews_period_idx ON dialog_reviews (reviewed_on, branch_id, employee_id);

CREATE TABLE dialog_review_results (
    review_id  uuid NOT NULL REFERENCES dialog_reviews (id),
    code       text NOT NULL,
    outcome    smallint NOT NULL,
    PRIMARY KEY (review_id, code)
);
