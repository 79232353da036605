"""How every page gets a photo to show: the bytes the database recorded for it, upright, cached per process.

Pages never hand a file path to ``st.image``: a file replaced after its minors decision would be shown under the
old decision. They pass the (path, sha256) that a read returned, and get JPEG bytes only when the file still holds
exactly those bytes (pipeline/photos.py). The cache is keyed by both, so what it returns is always the decided bytes.
"""

from __future__ import annotations

import streamlit as st

from pipeline import photos


@st.cache_data(max_entries=256, show_spinner=False)  # 256 JPEGs of at most 1600 px a side
def _display_bytes(path: str, sha256: str) -> bytes | None:
    return photos.display_bytes(path, sha256)


def photo(files: dict[str, tuple[str, str]], image_id: str) -> bytes | None:
    """The photo to show for ``image_id`` from a ``{id: (path, sha256)}`` read, or None when it cannot be shown
    (not in the read, i.e. not visible; file gone; bytes changed since the decision)."""
    if image_id not in files:
        return None
    path, sha256 = files[image_id]
    return _display_bytes(path, sha256) if isinstance(path, str) and isinstance(sha256, str) else None
