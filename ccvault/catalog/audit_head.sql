-- Schema version 6: the audit chain's head, committed in the same transaction as the
-- action each record describes, so the log cannot be cut, emptied, deleted or replaced
-- without disagreeing with the catalog. One row; seq NULL until the first record after this
-- migration anchors it (a log from before has no head to compare with).
CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER CHECK (seq >= 0),
    hash       TEXT CHECK (length(hash) = 64),
    checkpoint TEXT,                          -- the latest signed checkpoint (JSON)
    CHECK ((seq IS NULL) = (hash IS NULL))
);

INSERT INTO audit_head (id) VALUES (1);
