-- Perception: what the detectors saw in each photo's bytes (objects, faces, an age per face large enough to judge).
-- Rows are keyed by the photo and the perceiver (the set of detector weights, each named with its sha256), and carry
-- the sha256 of the bytes perceived: readers use only rows whose sha256 is the photo's current one, so a replaced
-- file is never judged by what another file showed.

-- One row per perceived photo, also when nothing was found: a photo without a row was never perceived.
CREATE TABLE perceived_photos (
    image_id  VARCHAR NOT NULL,
    perceiver VARCHAR NOT NULL,
    sha256    VARCHAR NOT NULL,
    width     INTEGER NOT NULL,   -- upright pixels (EXIF applied) the boxes refer to
    height    INTEGER NOT NULL,
    objects   INTEGER NOT NULL,   -- detections of kind 'object' stored for the photo
    faces     INTEGER NOT NULL,
    seconds   DOUBLE NOT NULL,    -- time the detectors took on the photo (decoding runs ahead, apart)
    created   TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, perceiver)
);

CREATE TABLE detections (
    image_id  VARCHAR NOT NULL,
    perceiver VARCHAR NOT NULL,
    sha256    VARCHAR NOT NULL,
    model_id  VARCHAR NOT NULL,   -- the network that produced the box (file name and sha256 prefix)
    kind      VARCHAR NOT NULL CHECK (kind IN ('object', 'face')),
    label     VARCHAR NOT NULL,   -- COCO-80 category name, or 'face'
    score     DOUBLE NOT NULL,
    x0        DOUBLE NOT NULL,
    y0        DOUBLE NOT NULL,
    x1        DOUBLE NOT NULL,
    y1        DOUBLE NOT NULL,
    size_px   DOUBLE NOT NULL,    -- the box's shorter side, in pixels
    age       DOUBLE,             -- faces of at least 32 px: expected age in years; NULL otherwise
    age_model VARCHAR
);
CREATE INDEX detections_photo ON detections (image_id, perceiver);
