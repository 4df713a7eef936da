-- A streaming export holds a lease that the process streaming it renews.
-- One whose lease ran out was cut off by a process that stopped (a crash, a
-- killed pod) and reads as interrupted, at the time its lease ended; until
-- now such a row stayed 'EXPORT_STATUS_STREAMING' for ever.
ALTER TABLE exports ADD COLUMN lease_until timestamptz;

-- Rows already streaming were left by processes that have stopped.
UPDATE exports SET lease_until = started_at WHERE status = 'EXPORT_STATUS_STREAMING';
