-- Master data pushed by the ERP. Ids are the ERP's own.
CREATE TABLE branches (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    region      text NOT NULL DEFAULT '',
    currency    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE employees (
    id            text PRIMARY KEY,
    branch_id     text NOT NULL REFERENCES branches (id),
    full_name     text NOT NULL,
    role          smallint NOT NULL,
    team_lead_id  text,
    active        boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX employees_branch_idx ON employees (branch_id, id);

CREATE TABLE product_lines (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id               text PRIMARY KEY,
    product_line_id  text NOT NULL REFERENCES product_lines (id),
    name             text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    kind               smallint NOT NULL,
    industry           text NOT NULL DEFAULT '',
    size_band          smallint NOT NULL DEFAULT 0,
    region             text NOT NULL DEFAULT '',
    founding_year      integer NOT NULL DEFAULT 0,
    branch_id          text NOT NULL REFERENCES branches (id),
    owner_employee_id  text REFERENCES employees (id),
    known_since        date NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_branch_idx ON clients (branch_id, id);
CREATE INDEX clients_owner_idx ON clients (owner_employee_id, id);
