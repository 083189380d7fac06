-- PostgreSQL form of camera_failing.sql (schema version 7): a camera may be 'failing'.
-- PostgreSQL changes a CHECK in place; SQLite's rebuild (drop `cameras`, rename a copy) would
-- fail here, as segments, imports and motion_spans refer to `cameras` by foreign key.
ALTER TABLE cameras DROP CONSTRAINT cameras_state_check;
ALTER TABLE cameras ADD CONSTRAINT cameras_state_check
    CHECK (state IN ('disabled', 'connecting', 'recording', 'stalled', 'offline', 'failing'));
