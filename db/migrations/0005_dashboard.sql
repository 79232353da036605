-- Dashboard writes. Every write the dashboard makes goes through a journal and a single writer thread
-- (db/write_queue.py); each carries a key, recorded here in the transaction that applies it, so replaying the
-- journal after a crash applies nothing twice. A label keeps the key of the write that made it: undo finds it by it.

ALTER TABLE labels ADD COLUMN write_key VARCHAR;

CREATE TABLE applied_writes (
    key        VARCHAR PRIMARY KEY,
    op         VARCHAR NOT NULL,   -- label, undo_label, moderate, blocked_query, reranker
    user_name  VARCHAR,
    submitted  TIMESTAMP NOT NULL, -- when the user made it (journalled)
    applied    TIMESTAMP NOT NULL, -- when it reached the database
    error      VARCHAR             -- why it was refused; NULL when applied
);
