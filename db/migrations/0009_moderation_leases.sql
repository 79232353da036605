-- The moderator queue (Minors review, "To decide"): one photo at a time per moderator, never the same photo to two
-- moderators at once. Claiming the next photo is a write (db/write_queue.py, op claim_next), applied by the one
-- writer thread, so two claims never race. A lease lapses at expires_at (a moderator who walked away); an expired
-- lease is anybody's. image_id is the key: one moderator per photo. db/moderation_queue.py keeps one lease per
-- moderator. A decision on a photo ends its lease (db/minors.py moderate).
CREATE TABLE moderation_leases (
    image_id   VARCHAR PRIMARY KEY,
    moderator  VARCHAR NOT NULL,
    leased_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- An undo in the queue is an audit row of its own (moderation_audit, reason "undo: ..."); this names the row it
-- reverts, so no decision is undone twice and "decided today" counts neither of them.
CREATE TABLE moderation_undos (
    undo_id  INTEGER PRIMARY KEY,      -- moderation_audit.id of the undo
    audit_id INTEGER NOT NULL UNIQUE   -- moderation_audit.id of the decision it reverts
);
