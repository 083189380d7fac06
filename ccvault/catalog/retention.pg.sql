-- PostgreSQL form of retention.sql (schema version 3): the same tables and indexes; the usage
-- triggers as PL/pgSQL (SQLite's trigger bodies are not PostgreSQL syntax).

-- Holds: footage a hold covers is never deleted or thinned, by any rule. A hold ends only by
-- its until_ms or by an explicit release; every change is also in the audit log.
CREATE TABLE holds (
    id             INTEGER PRIMARY KEY,
    from_ms        INTEGER NOT NULL,
    to_ms          INTEGER NOT NULL CHECK (to_ms > from_ms),
    until_ms       INTEGER,               -- NULL: until released
    reason         TEXT NOT NULL CHECK (length(reason) > 0),
    actor          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    released_ms    INTEGER,
    released_by    TEXT,
    release_reason TEXT
);
-- The cameras a hold covers; a hold without rows here covers every camera.
CREATE TABLE hold_cameras (
    hold_id INTEGER NOT NULL REFERENCES holds (id),
    camera  TEXT NOT NULL,
    PRIMARY KEY (hold_id, camera)
);

-- Export pins: footage handed over in an export is kept until the pin ends (issue: exports).
CREATE TABLE export_pins (
    id         INTEGER PRIMARY KEY,
    camera     TEXT NOT NULL,
    from_ms    INTEGER NOT NULL,
    to_ms      INTEGER NOT NULL CHECK (to_ms > from_ms),
    until_ms   INTEGER,
    reason     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

-- A file operation in flight, recorded before any file is touched and cleared after the last
-- step; start-up finishes or rolls back each one before anything else reads the volumes.
CREATE TABLE intents (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('delete', 'migrate', 'thin')),
    segment_id INTEGER NOT NULL,          -- no foreign key: a delete outlives its segment row
    src_volume TEXT NOT NULL,
    src_path   TEXT NOT NULL,
    dst_volume TEXT,                      -- migrate, thin: where the new copy goes
    dst_path   TEXT,
    -- 1 once the row points at the new copy: recovery then finishes (the source goes),
    -- else rolls back (the copy goes), whatever later operations did to the row.
    switched   INTEGER NOT NULL DEFAULT 0 CHECK (switched IN (0, 1)),
    created_ms INTEGER NOT NULL
);

ALTER TABLE segments ADD COLUMN thinned_ms INTEGER;  -- rewritten keyframes-only at this time
ALTER TABLE segments ADD COLUMN integrity TEXT NOT NULL DEFAULT 'unchecked'
    CHECK (integrity IN ('unchecked', 'ok', 'corrupt'));
ALTER TABLE segments ADD COLUMN scrubbed_ms INTEGER;

-- Candidate selection for retention walks only what may be due (FIELD_NOTES: 5.7 ms vs 733 ms).
CREATE INDEX segments_by_volume_start ON segments (volume_id, start_ms);
CREATE INDEX segments_idle ON segments (camera_id, start_ms)
    WHERE activity = 0 AND analysis IN (1, 2);
CREATE INDEX segments_idle_unthinned ON segments (camera_id, start_ms)
    WHERE activity = 0 AND analysis IN (1, 2) AND thinned_ms IS NULL;

-- Bytes per camera and volume, kept by triggers so quotas never sum the whole history.
CREATE TABLE usage (
    camera_id INTEGER NOT NULL,
    volume_id INTEGER NOT NULL,
    segments  INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (camera_id, volume_id)
);
INSERT INTO usage (camera_id, volume_id, segments, bytes)
    SELECT camera_id, volume_id, COUNT(*), SUM(bytes) FROM segments WHERE state = 'ok'
    GROUP BY camera_id, volume_id;

CREATE FUNCTION usage_add(camera BIGINT, volume BIGINT, size BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO usage (camera_id, volume_id, segments, bytes) VALUES (camera, volume, 1, size)
        ON CONFLICT (camera_id, volume_id)
        DO UPDATE SET segments = usage.segments + 1, bytes = usage.bytes + excluded.bytes;
$$;

CREATE FUNCTION usage_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.state = 'ok' THEN
        UPDATE usage SET segments = segments - 1, bytes = bytes - OLD.bytes
            WHERE camera_id = OLD.camera_id AND volume_id = OLD.volume_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state = 'ok' THEN
        PERFORM usage_add(NEW.camera_id, NEW.volume_id, NEW.bytes);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER usage_insert AFTER INSERT ON segments
    FOR EACH ROW EXECUTE FUNCTION usage_keep();
CREATE TRIGGER usage_delete AFTER DELETE ON segments
    FOR EACH ROW EXECUTE FUNCTION usage_keep();
CREATE TRIGGER usage_update AFTER UPDATE OF volume_id, bytes, state ON segments
    FOR EACH ROW EXECUTE FUNCTION usage_keep();
