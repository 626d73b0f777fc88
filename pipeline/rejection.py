"""The one rejection type: bad input named with a reason code, for a stage's item, a video and a photo.

A stage raises (or returns) `Reject` for an item it refuses: the runner records it in the rejects
table with its `code` and never retries it (pipeline/engine/stage.py). The video reader raises it for a
clip that cannot be used (pipeline/media/video.py), so a stage passes it on as it is. The photo tool
raises it for a photo, face or reference it cannot use (facereplace/): the CLI prints it as one
line and exits 2, and nothing is written (facereplace/errors.py `guarded`). The codes are listed
in docs/DATA.md (stages and videos) and come from the raising code (photos: no_face,
face_too_small, crop_out_of_frame, unreadable_image, too_many_pixels, several_faces,
bad_face_index, identity_mismatch, ...).
"""
from __future__ import annotations


class Reject(Exception):
    """Bad input: `code` is a short machine-readable reason, `detail` says which file or item and
    what was wrong; `str()` is "code: detail" (the code alone without a detail)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
