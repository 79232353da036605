-- Pages that scale: what the Ratings EDA page reads, kept beside the ratings so a page run never joins millions of
-- rows. db/relevance.py rewrites a dataset's rows of these tables with its relevance rows, in the same transaction
-- (ingest and the relevance stage both call it), so they always describe the ratings as stored.

-- Every judged (photo, query) pair: expert and crowd judgments joined FULL OUTER, with the relevance target. Indexed
-- by photo and by query (ART): a drill-down reads its few pairs in milliseconds instead of scanning every pair.
-- Sorting instead does not help: DuckDB's zone maps keep 8 bytes of a string, and ids share longer prefixes.
CREATE TABLE rated_pairs (
    dataset   VARCHAR NOT NULL,
    image_id  VARCHAR NOT NULL,
    query_id  VARCHAR NOT NULL,
    expert_1  TINYINT,                -- NULL when the experts did not judge the pair
    expert_2  TINYINT,
    expert_3  TINYINT,
    share     DOUBLE,                 -- crowd share of yes votes; NULL when the crowd did not judge it
    n_yes     INTEGER,
    n_no      INTEGER,
    target    DOUBLE                  -- relevance.relevance; NULL where the relevance formula gives none
);

-- The pairs counted by every value the page's charts and filters distinguish: per dataset, expert score triple,
-- crowd share bin and target bin (bins of width 0.1, 1.0 in the last), with the sums the headline means and the
-- expert/crowd correlation need. At most a few thousand rows per dataset, whatever the number of pairs.
CREATE TABLE rating_cube (
    dataset    VARCHAR NOT NULL,
    expert_1   TINYINT,
    expert_2   TINYINT,
    expert_3   TINYINT,
    share_bin  DOUBLE,                -- lower edge of the crowd share bin; NULL without crowd votes
    target_bin DOUBLE,                -- lower edge of the target bin; NULL without a target
    pairs      BIGINT NOT NULL,
    share_sum  DOUBLE,                -- sum of the crowd shares, and of their squares
    share_sq   DOUBLE,
    votes      BIGINT,                -- crowd votes (yes + no)
    target_sum DOUBLE
);

-- The query and photo pickers of the drill-downs: each judged query (with its caption text) and photo with its
-- number of judged pairs, and its place in the picker's order within the dataset (queries by text, photos by id),
-- stored in that order: the picker's first page (rank <= 50) is read from a row group or two (integer zone maps)
-- instead of sorting every query.
CREATE TABLE rated_queries (
    dataset    VARCHAR NOT NULL,
    query_id   VARCHAR NOT NULL,
    query_text VARCHAR,               -- NULL when the caption is absent from the source
    pairs      BIGINT NOT NULL,
    rank       BIGINT NOT NULL        -- 1.. by query_text (NULLs last), then query_id
);

CREATE TABLE rated_images (
    dataset  VARCHAR NOT NULL,
    image_id VARCHAR NOT NULL,
    pairs    BIGINT NOT NULL,
    rank     BIGINT NOT NULL          -- 1.. by image_id
);

-- Fill them from the ratings already stored (the statements of db/relevance.py _RATED, for every dataset).
INSERT INTO rated_pairs
SELECT coalesce(e.dataset, c.dataset), coalesce(e.image_id, c.image_id), coalesce(e.query_id, c.query_id),
       e.expert_1, e.expert_2, e.expert_3, c.share, c.n_yes, c.n_no, r.relevance
FROM expert_ratings e
FULL OUTER JOIN crowd_ratings c ON c.image_id = e.image_id AND c.query_id = e.query_id
LEFT JOIN relevance r ON r.image_id = coalesce(e.image_id, c.image_id) AND r.query_id = coalesce(e.query_id, c.query_id);

INSERT INTO rating_cube
SELECT dataset, expert_1, expert_2, expert_3, 
       CASE WHEN share IS NOT NULL THEN least(floor(share * 10), 9) / 10 END,
       CASE WHEN target IS NOT NULL THEN least(floor(target * 10), 9) / 10 END,
       count(*), sum(share), sum(share * share), sum(n_yes + n_no), sum(target)
FROM rated_pairs GROUP BY ALL;

INSERT INTO rated_queries
SELECT *, row_number() OVER (PARTITION BY dataset ORDER BY query_text NULLS LAST, query_id) AS rank
FROM (SELECT p.dataset, p.query_id, any_value(q.text) AS query_text, count(*) AS pairs
      FROM rated_pairs p LEFT JOIN captions q ON q.id = p.query_id GROUP BY p.dataset, p.query_id)
ORDER BY dataset, rank;

INSERT INTO rated_images
SELECT *, row_number() OVER (PARTITION BY dataset ORDER BY image_id) AS rank
FROM (SELECT dataset, image_id, count(*) AS pairs FROM rated_pairs GROUP BY ALL)
ORDER BY dataset, rank;

-- Built after the fill: one bulk build instead of an insert per row.
CREATE INDEX rated_pairs_image ON rated_pairs (image_id);
CREATE INDEX rated_pairs_query ON rated_pairs (query_id);

-- The minors rule of visible_images (0003) as a macro, so that reading a few photos by key (db/reads.py
-- visible_photo_files: a gallery, a drill-down) applies the very same rule to rows looked up through the primary
-- keys' indexes, instead of filtering the view (which scans every photo and every decision). Same view, same rule.
CREATE MACRO photo_visible(image_status, image_sha256, decision_status, decision_sha256) AS
    image_status = 'ok' AND decision_status = 'cleared' AND decision_sha256 IS NOT DISTINCT FROM image_sha256;

CREATE OR REPLACE VIEW visible_images AS
SELECT i.* FROM images i JOIN minors_decisions m ON m.image_id = i.id
WHERE photo_visible(i.status, i.sha256, m.status, m.sha256);
