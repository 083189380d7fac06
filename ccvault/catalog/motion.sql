-- Schema version 2: motion analysis.
CREATE TABLE motion_spans (
    id        INTEGER PRIMARY KEY,
    camera_id INTEGER NOT NULL REFERENCES cameras (id),
    start_ms  INTEGER NOT NULL,           -- first moving frame (unpadded)
    end_ms    INTEGER NOT NULL CHECK (end_ms >= start_ms),  -- last moving frame
    peak      REAL NOT NULL CHECK (peak BETWEEN 0 AND 1),
    area      REAL NOT NULL CHECK (area BETWEEN 0 AND 1),
    kind      TEXT NOT NULL CHECK (kind IN ('motion', 'lighting')),
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    -- 1 while the span is still going on at the end of the newest analysed segment.
    open      INTEGER NOT NULL DEFAULT 0 CHECK (open IN (0, 1))
);
CREATE INDEX motion_by_camera_start ON motion_spans (camera_id, start_ms);

-- The longest span ever stored bounds span queries from below, as max_segment_ms does.
ALTER TABLE cameras ADD COLUMN max_span_ms INTEGER NOT NULL DEFAULT 0;

-- analysis: 0 waiting, 1 analysed, 2 not analysed (motion disabled for the camera, or the
-- file could not be decoded), 3 being analysed by the `ccvault import` that stored it;
-- activity: the segment's range, padded, overlaps a span.
ALTER TABLE segments ADD COLUMN analysis INTEGER NOT NULL DEFAULT 0
    CHECK (analysis IN (0, 1, 2, 3));
ALTER TABLE segments ADD COLUMN activity INTEGER NOT NULL DEFAULT 0 CHECK (activity IN (0, 1));
CREATE INDEX segments_waiting_analysis ON segments (camera_id, start_ms) WHERE analysis = 0;
