-- Schema version 4: people and evidence exports.

-- Users of the HTTP API. Only a token's SHA-256 is stored: the token itself is shown once.
CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_sha256 TEXT NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_ms   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_ms   INTEGER,
    revoked_ms   INTEGER
);

-- Evidence exports run as jobs that survive restarts; their footage is pinned until done.
CREATE TABLE exports (
    id          INTEGER PRIMARY KEY,
    camera      TEXT NOT NULL,
    from_ms     INTEGER NOT NULL,
    to_ms       INTEGER NOT NULL CHECK (to_ms > from_ms),
    reason      TEXT NOT NULL CHECK (length(reason) > 0),
    actor       TEXT NOT NULL,
    dir         TEXT NOT NULL,             -- the bundle's directory (absolute)
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress    REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    error       TEXT,
    pin_id      INTEGER,                   -- export_pins row while the job runs
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER
);
