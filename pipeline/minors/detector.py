"""Image-side check for photos without captions: does the photo show any person at all?

No age model ships offline, so this could only clear photos that show nobody; a photo where any detector fires
stays pending. Detectors are OpenCV's bundled Haar cascades (frontal and profile faces, upper body, full body)
and its HOG people detector, tuned towards firing (minNeighbors 3, any positive HOG score). Measured on the
hand-labelled COCO-mini set (benchmarks/minors_filter.py --detector): it clears 16 of the 80 uncaptioned
photos, and 4 of those show people (partial or tiny figures; none labelled a child, 2 labelled unsure). Stricter
settings clear more and miss more people. That is why the filter leaves it off unless asked (`--detector`).
"""

from __future__ import annotations

import numpy as np

from pipeline import photos

MAX_SIDE = 800  # larger photos are scaled down first: detection time grows with pixels, recall barely does
CASCADES = (
    ("frontal_face", "haarcascade_frontalface_default.xml"),
    ("frontal_face_alt2", "haarcascade_frontalface_alt2.xml"),
    ("profile_face", "haarcascade_profileface.xml"),
    ("upper_body", "haarcascade_upperbody.xml"),
    ("full_body", "haarcascade_fullbody.xml"),
)
NAMES = tuple(name for name, _ in CASCADES) + ("profile_face_mirrored", "hog_person")


class PeopleDetector:
    """Counts detections per detector; ``sees_people`` is true when any count is above zero."""

    def __init__(self, min_neighbors: int = 3, hog_threshold: float = 0.0) -> None:
        import cv2

        self.cv2 = cv2
        self.min_neighbors = min_neighbors
        self.hog_threshold = hog_threshold
        self.cascades = [cv2.CascadeClassifier(cv2.data.haarcascades + file) for _, file in CASCADES]
        if any(c.empty() for c in self.cascades):
            raise RuntimeError(f"OpenCV cascades missing under {cv2.data.haarcascades}; "
                               "install opencv-python-headless==4.14.0.94")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.id = f"opencv-people-n{min_neighbors}-h{hog_threshold:g}"

    def count(self, path: str, sha256: str) -> np.ndarray | None:
        """Detections per detector (in NAMES order) on the decided bytes of the photo (pipeline/photos.py; OpenCV
        applies the EXIF orientation when it decodes), or None when they cannot be had or decoded."""
        cv2 = self.cv2
        try:
            data = photos.read_verified(path, sha256)
        except photos.PhotoUnavailable:
            return None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return None
        scale = MAX_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        found = [len(c.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(20, 20)))
                 for c in self.cascades]
        found.append(len(self.cascades[2].detectMultiScale(cv2.flip(gray, 1), scaleFactor=1.1,
                                                           minNeighbors=self.min_neighbors, minSize=(20, 20))))
        window_width, window_height = self.hog.winSize
        if image.shape[1] >= window_width and image.shape[0] >= window_height:
            _, weights = self.hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
            found.append(int((np.asarray(weights).reshape(-1) > self.hog_threshold).sum()))
        else:  # OpenCV aborts the whole process on a photo smaller than the HOG window (64 x 128)
            found.append(0)
        return np.asarray(found, dtype=np.float32)

    def sees_people(self, counts: np.ndarray) -> bool:
        return bool(np.asarray(counts).sum() > 0)

    @staticmethod
    def describe(counts: np.ndarray) -> dict[str, int]:
        return {name: int(n) for name, n in zip(NAMES, counts) if n}
