-- Target segments of the ideal client portrait and the products their
-- clients should use.
CREATE TABLE segments (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    priority    integer NOT NULL,
    kinds       smallint[] NOT NULL DEFAULT '{}',
    size_bands  smallint[] NOT NULL DEFAULT '{}',
    industries  text[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE segment_targets (
    segment_id  text NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    product_id  text NOT NULL REFERENCES products (id),
    PRIMARY KEY (segment_id, product_id)
);

-- The managed sales process per client and targeted product. A product
-- bought within the analysis window counts as in use without a row here.
CREATE TABLE client_product_states (
    client_id   text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    product_id  text NOT NULL REFERENCES products (id),
    state       smallint NOT NULL,
    state_date  date,
    reason      text NOT NULL DEFAULT '',
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, product_id)
);

-- "Clients who bought X also bought Y" of a run (one basket per client:
-- the products it bought in the analysis window).
CREATE TABLE basket_rules (
    run_id      bigint NOT NULL REFERENCES recompute_runs (id) ON DELETE CASCADE,
    antecedent  text NOT NULL,
    consequent  text NOT NULL,
    baskets     bigint NOT NULL,
    support     double precision NOT NULL,
    confidence  double precision NOT NULL,
    lift        double precision NOT NULL,
    PRIMARY KEY (run_id, antecedent, consequent)
);
