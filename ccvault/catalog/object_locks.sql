-- S3 Object Lock of archived segments (issue 17): what ccvault set on each object of a locking
-- bucket, so the retention planner knows a lock without asking the store (a dry run, `explain`)
-- and never plans a deletion the store would refuse. One row per segment whose object carries
-- a lock; it goes with the segment (a deleted segment has no object left to lock).
CREATE TABLE object_locks (
    segment_id      INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    mode            TEXT NOT NULL CHECK (mode IN ('governance', 'compliance')),
    retain_until_ms INTEGER NOT NULL,      -- set at upload: the end of the minimum retention
    legal_hold      INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1)),  -- as last set
    -- A legal hold change the store has not taken yet (the endpoint was down): the state to
    -- set, retried by the daemon with backoff until it is on the object. NULL: none pending.
    hold_wanted     INTEGER CHECK (hold_wanted IN (0, 1)),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_try_ms     INTEGER,
    PRIMARY KEY (segment_id)
);
CREATE INDEX object_locks_pending ON object_locks (next_try_ms) WHERE hold_wanted IS NOT NULL;
-- Legally held objects: each routine pass looks whether a hold still covers them.
CREATE INDEX object_locks_held ON object_locks (segment_id) WHERE legal_hold = 1;
