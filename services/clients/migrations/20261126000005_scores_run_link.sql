-- A score's and a history row's run_id says which recompute wrote it. The
-- recompute inserts the run in the same transaction as the rows that name it,
-- and runs are never deleted, so the foreign keys only cost a trigger call
-- per row: 6.3 of the 26 seconds a million scores and history rows took to
-- write (docs/benchmarks.md).
ALTER TABLE client_scores DROP CONSTRAINT client_scores_run_id_fkey;
ALTER TABLE client_class_history DROP CONSTRAINT client_class_history_run_id_fkey;
