-- One audit chain per node (issue 16 item 3): each node appends to its own file (nodes on
-- different machines cannot share one), so each keeps its own complete chain and the catalog
-- one head per node, committed in the transaction of the action its record describes. The
-- head of writers that are no node (tools, benches) is node '' (no node's name: a slug is
-- never empty), and so is the head from before nodes: the first node to write a record
-- adopts it once (`writes.audit.write_head`): the one box that became the first node, whose
-- file holds that chain — as the first node to start claims the rows from before nodes.
-- No row until the first record anchors it.
CREATE TABLE audit_heads (
    node       TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    hash       TEXT NOT NULL CHECK (length(hash) = 64),
    checkpoint TEXT                           -- the latest signed checkpoint (JSON)
);

INSERT INTO audit_heads (node, seq, hash, checkpoint)
    SELECT '', seq, hash, checkpoint FROM audit_head WHERE id = 1 AND seq IS NOT NULL;

DROP TABLE audit_head;
