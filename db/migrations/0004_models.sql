-- Relevance models: one row per trained (model, feature set, target) run, its out-of-fold predictions, and the
-- reviewers' labels that can join training (`train --include-feedback`).

CREATE TABLE model_runs (
    id               VARCHAR PRIMARY KEY,   -- '<target>/<feature set>/<model>/<yyyymmddThhmmss>-<4 hex>'
    model            VARCHAR NOT NULL,      -- constant, zero-shot, ridge, random-forest, hist-gradient-boosting, mlp
    params           JSON NOT NULL,         -- chosen hyper-parameters per fold and of the final fit, search space
    encoder          VARCHAR NOT NULL,      -- text (and photo) encoder whose vectors the features use
    feature_set      VARCHAR NOT NULL,
    uses_captions    BOOLEAN NOT NULL,      -- reference captions in the features: needs captioned photos
    uses_images      BOOLEAN NOT NULL,      -- photo vectors in the features: needs the photo files
    target           VARCHAR NOT NULL,      -- flickr8k-expert, flickr8k-crowd, coco-pairs
    data_version     VARCHAR NOT NULL,      -- dataset and ingest run the pairs come from
    pairs            INTEGER NOT NULL,
    feedback_pairs   INTEGER NOT NULL,      -- reviewer labels that joined training (0 without --include-feedback)
    folds            INTEGER NOT NULL,
    fold_metrics     JSON NOT NULL,         -- one object of metrics per fold, with beats_baseline per fold
    metrics          JSON NOT NULL,         -- the same metrics over all out-of-fold predictions
    beats_baseline   BOOLEAN,               -- lower MSE than the constant on every fold; NULL for the constant
    train_seconds    DOUBLE NOT NULL,       -- cross-validation, searches and the final fit
    predict_ms       DOUBLE NOT NULL,       -- per 1,000 pairs, features given
    artifact         VARCHAR NOT NULL,      -- file of the model fitted on all pairs (versioned by the run id)
    artifact_sha256  VARCHAR NOT NULL,
    created          TIMESTAMP NOT NULL
);

-- Out-of-fold predictions, for predicted-vs-actual and residual charts.
CREATE TABLE model_predictions (
    run_id     VARCHAR NOT NULL,
    image_id   VARCHAR NOT NULL,
    query_id   VARCHAR NOT NULL,
    fold       INTEGER NOT NULL,
    actual     DOUBLE NOT NULL,
    predicted  DOUBLE NOT NULL
);

-- Reviewers' verdicts on search results (the dashboard's Live search page).
CREATE TABLE labels (
    id         BIGINT PRIMARY KEY,
    user_name  VARCHAR NOT NULL,
    created    TIMESTAMP NOT NULL,
    query      VARCHAR NOT NULL,
    image_id   VARCHAR NOT NULL,
    encoder    VARCHAR NOT NULL,
    rank       INTEGER NOT NULL,
    score      DOUBLE,
    verdict    VARCHAR NOT NULL CHECK (verdict IN ('relevant', 'not_relevant', 'offensive')),
    comment    VARCHAR
);
CREATE SEQUENCE labels_id START 1;
