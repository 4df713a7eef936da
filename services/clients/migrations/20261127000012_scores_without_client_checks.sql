-- Scores and class history are written only by the recompute, for the
-- clients it has just read, and clients are never deleted (master data is
-- upserted, never removed), so their client_id foreign keys guard nothing
-- while each check locks the client's row (FOR KEY SHARE), dirtying the
-- clients table and writing WAL for every client scored. Without them a
-- first run into empty tables at a million clients took 41.4 s instead of
-- 69.9 s (history 7.5 s instead of 21.0, storing 11.8 instead of 22.5;
-- docs/benchmarks.md). Reads join clients, so a score of a client that is
-- not there would never be served. As with run_id
-- (20261126000005_scores_run_link), a deletion of clients, if one is ever
-- added, deletes their scores and history itself.
ALTER TABLE client_scores DROP CONSTRAINT IF EXISTS client_scores_client_id_fkey;
ALTER TABLE client_class_history DROP CONSTRAINT IF EXISTS client_class_history_client_id_fkey;
