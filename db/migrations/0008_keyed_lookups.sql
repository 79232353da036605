-- Live search at a million photos: a page looks up a few hundred photos' vectors, detections, perception and
-- captions by photo id (db/reads.py keyed_in). DuckDB's ART indexes answer `image_id IN (...)` only on an index
-- whose first and only column is image_id (the composite primary keys of embeddings and perceived_photos, and
-- detections_photo, are scanned instead): ~400 ms per lookup at a million rows, ~50 ms with these.
CREATE INDEX embeddings_image ON embeddings (image_id);
CREATE INDEX detections_image ON detections (image_id);
CREATE INDEX perceived_photos_image ON perceived_photos (image_id);
CREATE INDEX captions_image ON captions (image_id);
