-- Schema version 5: alerts that fired, so `ccvault alerts` and the API list them, and a
-- restarted daemon resolves (rather than forgets) what was firing before it stopped.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,             -- name + labels, stable across restarts
    labels      TEXT NOT NULL,             -- JSON object
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}', -- JSON object
    event       INTEGER NOT NULL DEFAULT 0, -- a one-off event: resolved when raised
    started_ms  INTEGER NOT NULL,
    resolved_ms INTEGER,
    notified_ms INTEGER,
    notices     INTEGER NOT NULL DEFAULT 0  -- notifications sent (fired, re-sent, escalated)
);

CREATE UNIQUE INDEX alerts_active ON alerts (fingerprint) WHERE resolved_ms IS NULL;
CREATE INDEX alerts_resolved ON alerts (resolved_ms) WHERE resolved_ms IS NOT NULL;

-- Corrupt segments are rare; segment_corrupt looks them up every check without a scan.
CREATE INDEX segments_corrupt ON segments (scrubbed_ms) WHERE integrity = 'corrupt';
