"""`app` section: `piq app` (facereplace/app/), the photo tool as a local web page. What one
session may hold, so a page (or anything that got its token) cannot fill the disk or memory."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AppParams:
    max_photos: int = 50          # photos and references one session may open; the next upload is refused (409)
    max_upload_mb: int = 256      # bytes of one upload, counted as they arrive whatever Content-Length says (413)
    max_uploads_at_once: int = 4  # uploads read at the same time; more are refused (429) rather than queued on disk

    def validate(self) -> None:
        if min(self.max_photos, self.max_upload_mb, self.max_uploads_at_once) < 1:
            raise ValueError("app.max_photos, app.max_upload_mb and app.max_uploads_at_once must be >= 1")
