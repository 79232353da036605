"""Minors filter: photos of children under 16 must not be shown in some countries.

lexicon.py finds child words in captions and queries (with their traps), on text textfold.py has folded (format
characters dropped, look-alike letters to Latin, split words joined); filter.py decides per photo and writes
`minors_decisions`; image_layer.py judges each photo from what the perceive stage saw (person boxes, faces, ages)
with thresholds calibrated on labelled photos (image_thresholds.json); detector.py (OpenCV) and clip_check.py are
older image-side checks for photos without captions, kept for machines without the perception weights;
moderation.py records moderator decisions with an audit trail; query_block.py refuses queries about children.
"""
