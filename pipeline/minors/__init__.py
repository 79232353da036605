"""Minors filter: photos of children under 16 must not be shown in some countries.

lexicon.py finds child words in captions and queries (with their traps), on text textfold.py has folded (format
characters dropped, look-alike letters to Latin, split words joined); filter.py decides per photo and writes
`minors_decisions`; detector.py is the image-side check for photos without captions; moderation.py records
moderator decisions with an audit trail; query_block.py refuses queries about children.
"""
