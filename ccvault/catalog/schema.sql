-- Schema version 1: the segment store. Later versions are appended as migrations in schema.py;
-- this file is never edited once released.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE cameras (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    -- The longest segment ever stored for this camera bounds every time-range query from below.
    max_segment_ms INTEGER NOT NULL DEFAULT 0 CHECK (max_segment_ms >= 0),
    state          TEXT NOT NULL DEFAULT 'offline'
                   CHECK (state IN ('disabled', 'connecting', 'recording', 'stalled', 'offline')),
    state_since_ms INTEGER,
    state_reason   TEXT
);

CREATE TABLE volumes (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    uuid           TEXT NOT NULL UNIQUE,
    initialised_ms INTEGER NOT NULL
);

CREATE TABLE segments (
    id          INTEGER PRIMARY KEY,
    camera_id   INTEGER NOT NULL REFERENCES cameras (id),
    volume_id   INTEGER NOT NULL REFERENCES volumes (id),
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL CHECK (end_ms > start_ms),
    path        TEXT NOT NULL,            -- relative to the volume root
    bytes       INTEGER NOT NULL CHECK (bytes > 0),
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64),
    codec       TEXT NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    frames      INTEGER NOT NULL CHECK (frames > 0),
    origin      TEXT NOT NULL CHECK (origin IN ('recorded', 'imported', 'adopted')),
    state       TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing')),
    ingested_ms INTEGER NOT NULL,
    UNIQUE (volume_id, path)
);
CREATE INDEX segments_by_camera_start ON segments (camera_id, start_ms);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    camera_id     INTEGER NOT NULL REFERENCES cameras (id),
    source_name   TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    segments      INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    UNIQUE (camera_id, source_sha256, start_ms)
);

CREATE TABLE quarantine (
    id         INTEGER PRIMARY KEY,
    volume_id  INTEGER REFERENCES volumes (id),
    path       TEXT NOT NULL,             -- relative to the volume root
    camera     TEXT,
    reason     TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
