-- The Explore page's embedding map (pipeline/project.py): each photo vector projected to 2-D and given a cluster,
-- computed in the pipeline so that the page only reads. A map is computed from every vector of an encoder, whatever
-- the minors filter decided; the page shows only visible photos, joining visible_images on the bytes the vector was
-- computed from (sha256), so an excluded or pending photo, or one whose file changed since, is never drawn.

-- One row per (encoder, photo): where the photo lies on the map and which cluster of its vectors it falls in.
-- Unique per (encoder_id, image_id) because the stage writes one row per row of embeddings (whose primary key that
-- is), after deleting the encoder's map in the same transaction. No PRIMARY KEY: replacing a million-point map
-- under one (DELETE, then INSERT of the same keys, in one transaction) took 87 s instead of 10 s
-- (benchmarks/project.py), and the page never looks a point up by key: it reads an encoder's map whole, joined to
-- visible_images.
CREATE TABLE photo_map (
    encoder_id VARCHAR NOT NULL,
    image_id   VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,    -- of the photo bytes the vector (hence the point) was computed from
    x          FLOAT NOT NULL,
    y          FLOAT NOT NULL,
    cluster    SMALLINT NOT NULL
);

-- One row per encoder's map: what it was computed from. The vector-set version (count, newest created) is the one
-- db/embeddings.py vector_set_version reads, so the page can tell the map is stale when the vectors changed since.
CREATE TABLE photo_maps (
    encoder_id     VARCHAR PRIMARY KEY,
    vectors        BIGINT NOT NULL,     -- vector_set_version: how many vectors the encoder had
    vectors_newest TIMESTAMP,           -- vector_set_version: the newest vector's created
    method         VARCHAR NOT NULL,    -- e.g. 'pca2+minibatch-kmeans'
    fitted_on      INTEGER NOT NULL,    -- vectors in the fitting sample
    clusters       SMALLINT NOT NULL,
    seed           INTEGER NOT NULL,
    explained      DOUBLE NOT NULL,     -- share of the sample's variance the two axes keep
    seconds        DOUBLE NOT NULL,
    created        TIMESTAMP NOT NULL
);
