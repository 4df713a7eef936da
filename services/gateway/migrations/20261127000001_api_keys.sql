-- API keys of integrations; (created_by, request_id) makes creating one
-- idempotent per caller.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    request_id    text NOT NULL,
    created_by    text NOT NULL,
    display_name  text NOT NULL,
    subject       text NOT NULL,
    role          text NOT NULL,
    branch_ids    text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    UNIQUE (created_by, request_id)
);

-- Only the hash of a secret is stored: the secret itself is shown once.
CREATE TABLE api_key_secrets (
    hash        bytea PRIMARY KEY,
    api_key_id  text NOT NULL REFERENCES api_keys (id),
    hint        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL while the secret is its key's newest; a rotation sets it.
    expires_at  timestamptz
);
CREATE INDEX api_key_secrets_key_idx ON api_key_secrets (api_key_id);
