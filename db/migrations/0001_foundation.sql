-- Foundation schema: datasets, images, captions, ratings, relevance, objects, ingest bookkeeping.
-- Ids are stable text keys ("<dataset>/<name>") so that re-ingesting a dataset keeps every id that later
-- stages (embeddings, filter decisions, labels) refer to. No FOREIGN KEY clauses: a dataset is replaced
-- wholesale inside one transaction, and the loaders enforce references themselves (rejects table).
-- The pair tables (ratings, relevance, query_pairs) carry no PRIMARY KEY: the loader already rejects duplicate
-- keys, and maintaining DuckDB's ART index on a million-row load cost more than the whole validation (measured
-- with benchmarks/ingest.py). tests/test_real_data.py checks the keys stay unique.

CREATE TABLE datasets (
    id          VARCHAR PRIMARY KEY,      -- short name, e.g. 'coco-mini'
    layout      VARCHAR NOT NULL,         -- 'withsense' | 'flickr8k' | 'coco'
    root        VARCHAR NOT NULL,         -- absolute source directory of the last ingest
    fingerprint VARCHAR NOT NULL,         -- hash of the source files' names, sizes and mtimes
    last_run_id INTEGER NOT NULL
);

CREATE TABLE images (
    id          VARCHAR PRIMARY KEY,      -- '<dataset>/<name>'
    dataset     VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,         -- key in the source files (file name, or COCO numeric id)
    path        VARCHAR,                  -- relative to the dataset root; NULL when no file is known
    split       VARCHAR,                  -- train / dev / test / val ... where the source says so
    width       INTEGER,
    height      INTEGER,
    sha256      VARCHAR,
    status      VARCHAR NOT NULL CHECK (status IN ('ok', 'missing', 'corrupt')),
    status_reason VARCHAR,
    has_caption BOOLEAN NOT NULL
);

CREATE TABLE captions (
    id          VARCHAR PRIMARY KEY,      -- '<dataset>/<caption key>', e.g. 'flickr8k-text/123_abc.jpg#2'
    dataset     VARCHAR NOT NULL,
    image_id    VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    source      VARCHAR NOT NULL          -- file the caption came from
);

-- (image, query) pairs that a dataset lists without a score (With Sense train_dataset.csv, test_queries.csv).
CREATE TABLE query_pairs (
    dataset     VARCHAR NOT NULL,
    image_id    VARCHAR NOT NULL,
    query_id    VARCHAR NOT NULL,         -- a captions.id
    split       VARCHAR NOT NULL          -- unique (image_id, query_id, split)
);

CREATE TABLE expert_ratings (
    dataset     VARCHAR NOT NULL,
    image_id    VARCHAR NOT NULL,
    query_id    VARCHAR NOT NULL,         -- a captions.id (the caption may be absent from the source)
    expert_1    TINYINT NOT NULL CHECK (expert_1 BETWEEN 1 AND 4),
    expert_2    TINYINT NOT NULL CHECK (expert_2 BETWEEN 1 AND 4),
    expert_3    TINYINT NOT NULL CHECK (expert_3 BETWEEN 1 AND 4)  -- unique (image_id, query_id)
);

CREATE TABLE crowd_ratings (
    dataset     VARCHAR NOT NULL,
    image_id    VARCHAR NOT NULL,
    query_id    VARCHAR NOT NULL,
    share       DOUBLE NOT NULL CHECK (share BETWEEN 0 AND 1),
    n_yes       INTEGER NOT NULL CHECK (n_yes >= 0),
    n_no        INTEGER NOT NULL CHECK (n_no >= 0)  -- unique (image_id, query_id)
);

-- One aggregated 0..1 target per (image, query) pair; see pipeline/relevance.py for the formula.
CREATE TABLE relevance (
    dataset       VARCHAR NOT NULL,
    image_id      VARCHAR NOT NULL,
    query_id      VARCHAR NOT NULL,
    expert_score  DOUBLE,                 -- mean expert score mapped from 1..4 to 0..1
    crowd_share   DOUBLE,
    n_crowd_votes INTEGER,
    relevance     DOUBLE NOT NULL CHECK (relevance BETWEEN 0 AND 1),
    formula       VARCHAR NOT NULL        -- unique (image_id, query_id)
);

CREATE TABLE objects (
    dataset       VARCHAR NOT NULL,
    image_id      VARCHAR NOT NULL,
    category      VARCHAR NOT NULL,
    supercategory VARCHAR,
    n_instances   INTEGER NOT NULL,
    PRIMARY KEY (image_id, category)
);

CREATE TABLE ingest_runs (
    id        INTEGER PRIMARY KEY,          -- max(id) + 1, taken under the single write lock
    dataset   VARCHAR NOT NULL,
    source    VARCHAR NOT NULL,           -- absolute source directory
    layout    VARCHAR NOT NULL,
    started   TIMESTAMP NOT NULL,
    finished  TIMESTAMP,
    counts    JSON,                       -- per file: read / accepted / rejected; per table: rows
    status    VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')),
    message   VARCHAR
);

CREATE TABLE rejects (
    run_id    INTEGER NOT NULL,
    dataset   VARCHAR NOT NULL,
    file      VARCHAR NOT NULL,           -- relative to the dataset root
    line      BIGINT,                     -- 1-based line; for JSON the 1-based record index; NULL for image files
    raw       VARCHAR,                    -- the line as read; invalid bytes shown as \xNN
    reason    VARCHAR NOT NULL
);

-- Key/value settings that stages share, e.g. the relevance formula weights.
CREATE TABLE settings (
    key   VARCHAR PRIMARY KEY,
    value JSON NOT NULL
);
