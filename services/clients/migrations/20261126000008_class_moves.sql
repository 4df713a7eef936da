-- The "client class and its changes" KPI (domain.md section 4) counts ABC
-- class moves per owner and period: each history row keeps the class it
-- moved from, so a period's moves are a range read, not a replay of every
-- client's history.
ALTER TABLE client_class_history ADD COLUMN previous_abc_class smallint NOT NULL DEFAULT 0;

UPDATE client_class_history h SET previous_abc_class = p.previous
FROM (
    SELECT client_id, as_of, lag(abc_class, 1, 0::smallint) OVER (PARTITION BY client_id ORDER BY as_of) AS previous
    FROM client_class_history
) p
WHERE p.client_id = h.client_id AND p.as_of = h.as_of AND p.previous <> 0;

CREATE INDEX client_class_history_abc_moves_idx ON client_class_history (as_of)
    WHERE abc_class <> previous_abc_class;
