-- ccvault: rebuilds a table (foreign keys off while it runs, checked before it commits)
-- Schema version 7: a camera may be 'failing' — frames arrive, but no segment is
-- stored (a full spool, a volume or catalog refusing writes). SQLite cannot change a CHECK in
-- place, so `cameras` is rebuilt with the same columns, ids and rows.
CREATE TABLE cameras_new (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    -- The longest segment ever stored for this camera bounds every time-range query from below.
    max_segment_ms INTEGER NOT NULL DEFAULT 0 CHECK (max_segment_ms >= 0),
    state          TEXT NOT NULL DEFAULT 'offline'
                   CHECK (state IN ('disabled', 'connecting', 'recording', 'stalled', 'offline',
                                    'failing')),
    state_since_ms INTEGER,
    state_reason   TEXT,
    max_span_ms    INTEGER NOT NULL DEFAULT 0
);

INSERT INTO cameras_new (id, name, max_segment_ms, state, state_since_ms, state_reason, max_span_ms)
    SELECT id, name, max_segment_ms, state, state_since_ms, state_reason, max_span_ms
    FROM cameras;

DROP TABLE cameras;

ALTER TABLE cameras_new RENAME TO cameras;
