-- Cached scores that went out of date while Redis could not drop them (down,
-- or slower than the command timeout): each replica deletes these keys as
-- soon as Redis answers again, then the row. A client moved to another
-- branch is owed here in the same transaction as the move, so its old
-- branch's staff cannot keep reading a cached score naming the old branch.
CREATE TABLE score_cache_purges (
    id bigserial PRIMARY KEY,
    client_id text NOT NULL,
    owed_at timestamptz NOT NULL DEFAULT now()
);
