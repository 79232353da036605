-- Minors filter: one decision per photo, moderator audit trail, blocked queries, and the narrowed view.

CREATE TABLE minors_decisions (
    image_id         VARCHAR PRIMARY KEY,
    sha256           VARCHAR,                  -- the photo bytes decided on: new bytes, new decision
    status           VARCHAR NOT NULL CHECK (status IN ('excluded', 'cleared', 'pending_review')),
    reasons          JSON NOT NULL,            -- matched words with caption and span, detector counts, rule
    rule_set_version VARCHAR NOT NULL,
    decided_by       VARCHAR NOT NULL CHECK (decided_by IN ('rule', 'moderator')),
    moderator        VARCHAR,                  -- who, when decided_by = 'moderator'
    decided_at       TIMESTAMP NOT NULL
);

CREATE TABLE moderation_audit (
    id         INTEGER PRIMARY KEY,
    image_id   VARCHAR NOT NULL,
    moderator  VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    old_status VARCHAR,
    new_status VARCHAR NOT NULL,
    reason     VARCHAR NOT NULL
);

CREATE TABLE blocked_queries (
    id               INTEGER PRIMARY KEY,
    logged_at        TIMESTAMP NOT NULL,
    query            VARCHAR NOT NULL,
    matches          JSON NOT NULL,
    user_name        VARCHAR,
    rule_set_version VARCHAR NOT NULL
);

-- Fail closed: a photo is visible only once the filter (or a moderator) has cleared these very bytes; a
-- photo with no decision yet, pending review, excluded, or replaced since its decision is not.
CREATE OR REPLACE VIEW visible_images AS
SELECT i.* FROM images i JOIN minors_decisions m ON m.image_id = i.id AND m.sha256 IS NOT DISTINCT FROM i.sha256
WHERE i.status = 'ok' AND m.status = 'cleared';
