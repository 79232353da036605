-- Embeddings, search and retrieval metrics.
-- Vectors are FLOAT[] lists rather than fixed FLOAT[d] arrays because encoders differ in dimension (384 for the
-- offline encoder, 512 for CLIP ViT-B-32); every row of one encoder_id has the same length, which the embed
-- stage guarantees, so queries can cast to FLOAT[d] where an array function needs it.

-- The only way non-moderator code reads photos. The minors filter (a later migration) narrows it to photos the
-- filter has cleared; until then every readable photo is visible.
CREATE VIEW visible_images AS SELECT * FROM images WHERE status = 'ok';

-- What an encoder's costly network returned for a photo (e.g. classifier logits), keyed by the photo's bytes.
CREATE TABLE image_features (
    image_id   VARCHAR NOT NULL,
    feature_id VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    features   FLOAT[] NOT NULL,
    PRIMARY KEY (image_id, feature_id)
);

CREATE TABLE embeddings (
    image_id   VARCHAR NOT NULL,
    encoder_id VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,          -- of the photo the vector was computed from
    vector     FLOAT[] NOT NULL,          -- L2-normalised
    created    TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, encoder_id)
);

CREATE TABLE text_embeddings (
    encoder_id  VARCHAR NOT NULL,
    text_sha256 VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    vector      FLOAT[] NOT NULL,
    PRIMARY KEY (encoder_id, text_sha256)
);

-- Fitted bridges of the offline encoder (photo classifier -> text space); `current` marks the one in use.
CREATE TABLE bridges (
    id       VARCHAR PRIMARY KEY,
    params   JSON NOT NULL,
    created  TIMESTAMP NOT NULL,
    current  BOOLEAN NOT NULL
);

CREATE TABLE retrieval_metrics (
    encoder      VARCHAR NOT NULL,
    protocol     VARCHAR NOT NULL,        -- e.g. 'coco-caption', 'coco-category'
    metric       VARCHAR NOT NULL,        -- recall@1, recall@5, recall@10, mrr, ndcg@10, map
    value        DOUBLE NOT NULL,
    data_version VARCHAR NOT NULL,        -- dataset and ingest run the figures come from
    created      TIMESTAMP NOT NULL,
    details      JSON                     -- queries, gallery size, split, how learned parts were held out
);
