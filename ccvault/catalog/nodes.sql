-- Several recorder nodes, one catalog (issue 16): each camera and volume belongs to a node,
-- and a segment to the node of its volume (an intent too: through its source volume). NULL: a
-- row from before nodes, claimed by the first node that starts on this catalog
-- (`NodeWrites.start`).
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    url          TEXT,                    -- where the other nodes reach its API; NULL: nowhere
    started_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL         -- its heartbeat; older than 3 beats: down
);
-- No foreign key: a node's CLI makes its rows before its daemon first starts (and registers it).
ALTER TABLE cameras ADD COLUMN node TEXT;
ALTER TABLE volumes ADD COLUMN node TEXT;
CREATE INDEX volumes_by_node ON volumes (node);

-- Alerts stay site-wide (one table, `ccvault alerts` on any node lists them all), but each
-- node fires and resolves only its own: a node that restarts carries its own firing alerts,
-- not another's, and two nodes may both see one condition (node c down, seen by a and b).
ALTER TABLE alerts ADD COLUMN node TEXT;
DROP INDEX alerts_active;
CREATE UNIQUE INDEX alerts_active_by_node ON alerts (fingerprint, node) WHERE resolved_ms IS NULL;

-- An export job is run (and its bundle, in that node's [export] dir, expired) by the node
-- that was asked for it: the bundle's directory is on that node's disks.
ALTER TABLE exports ADD COLUMN node TEXT;
