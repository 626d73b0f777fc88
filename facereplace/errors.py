"""The photo tool's one error type: bad input named with what was wrong (the CLI prints it and
exits non-zero; nothing is written)."""
from __future__ import annotations


class PhotoError(ValueError):
    """A photo, face or reference the tool cannot use. `code` is a short machine-readable
    reason (no_face, face_too_small, crop_out_of_frame, unreadable_image, too_many_pixels,
    several_faces, bad_face_index, identity_mismatch, ...); the message says which file."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
