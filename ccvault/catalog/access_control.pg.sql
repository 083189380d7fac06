-- PostgreSQL form of access_control.sql (schema version 8): `offset` is a reserved word in
-- PostgreSQL (quoted here, and in every statement that names it), and the users table's CHECK
-- is altered in place rather than rebuilt.
-- Access control: the door's events, the visits they make, and people counted on video.

-- Every event an access system reported, once: `event_id` is the source's own id, so an event
-- that arrives twice (a retry, a file read again, the same event by MQTT and by file) is one row.
CREATE TABLE access_events (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 200),
    source      TEXT NOT NULL,            -- http:<user> | mqtt | file
    time_ms     INTEGER NOT NULL,
    door        TEXT NOT NULL,
    room        TEXT NOT NULL,            -- the door's room when the event arrived
    person      TEXT NOT NULL,
    role        TEXT,                     -- as reported, else from [[access.people]], else NULL
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    result      TEXT NOT NULL CHECK (result IN ('granted', 'denied', 'forced', 'held_open')),
    received_ms INTEGER NOT NULL
);
CREATE INDEX access_events_by_time ON access_events (time_ms);
CREATE INDEX access_events_by_room ON access_events (room, time_ms);

-- A person's stay in a room, made from its granted in/out events. A visit keeps its id when
-- late events re-derive it: its key is the event that opened it (entry, or for an exit with no
-- entry that exit).
CREATE TABLE visits (
    id          INTEGER PRIMARY KEY,
    room        TEXT NOT NULL,
    person      TEXT NOT NULL,
    role        TEXT,
    key_event   INTEGER NOT NULL UNIQUE,  -- access_events.id that opened it
    entered_ms  INTEGER,                  -- NULL: an exit with no entry (flagged no_entry)
    left_ms     INTEGER,                  -- NULL: still inside
    doors       TEXT NOT NULL DEFAULT '[]',       -- JSON list of doors used
    escorted_by TEXT NOT NULL DEFAULT '[]',       -- JSON list of person ids
    flags       TEXT NOT NULL DEFAULT '[]',       -- JSON list: no_entry, entered_twice
    CHECK (entered_ms IS NOT NULL OR left_ms IS NOT NULL)
);
CREATE INDEX visits_by_room ON visits (room, entered_ms);
CREATE INDEX visits_by_person ON visits (person, entered_ms);
CREATE INDEX visits_open ON visits (room) WHERE left_ms IS NULL;

-- Rooms whose visits must be derived again from `from_ms` on: set with the events that make it
-- so, cleared when the visits are stored, so a crash in between is finished at start-up.
CREATE TABLE visits_dirty (
    room    TEXT PRIMARY KEY,
    from_ms INTEGER NOT NULL
);

-- Where a followed access log was read to: survives restarts, so no event is read twice or lost.
CREATE TABLE access_sources (
    source     TEXT PRIMARY KEY,
    device     INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    "offset"   INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- The most people counted on one sampled frame of a motion span (NULL: not counted).
ALTER TABLE motion_spans ADD COLUMN people_max INTEGER;
-- How long that count lasted (from the first to the last sampled frame showing it).
ALTER TABLE motion_spans ADD COLUMN people_max_ms INTEGER NOT NULL DEFAULT 0;

-- The integration role (an access system posting events; nothing else): PostgreSQL changes the
-- CHECK in place.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('viewer', 'operator', 'admin', 'integration'));
