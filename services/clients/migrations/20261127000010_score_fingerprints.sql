-- A stored score is rewritten only when its content changes: the
-- fingerprint of the explained score without its date, compute time and
-- recency (what every run changes). NULL (scores stored before this
-- migration) differs from every fingerprint, so the next run rewrites them.
ALTER TABLE client_scores ADD COLUMN content_hash bigint;
