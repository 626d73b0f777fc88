"""Parameters of the `ingest` stage (paper section B.2)."""
from __future__ import annotations

import dataclasses

from pipeline.config.keys import runtime

# The five categories the paper keeps (B.2). Metadata rows in any other category are refused.
PAPER_CATEGORIES: tuple[str, ...] = (
    "making eye contact with the camera while sitting in front of a computer",
    "making eye contact with the camera while sitting at a distance",
    "making eye contact with the camera while standing",
    "no facial expression",
    "no gesture",
)


@dataclasses.dataclass(frozen=True)
class IngestParams:
    """Frame sampling, MTCNN filtering and cropping of neutral faces.

    See params.yaml for the paper's value beside each key and docs/DATA.md for the outputs.
    """

    videos_dir: str = "samples/videos"
    metadata_csv: str = "samples/metadata.csv"
    out_dir: str = runtime("data/ingest")
    keep_categories: tuple[str, ...] = PAPER_CATEGORIES
    candidates_per_video: int = 8
    keep_per_video: int = 2
    detect_max_side: int = 640
    min_face_prob: float = 0.90
    second_face_prob: float = 0.90
    min_face_px: int = 64
    max_eye_nose_deg: float = 10.0
    max_mouth_nose_deg: float = 10.0
    max_vertical_deg: float = 10.0
    box_scale: float = 2.0
    out_size: int = 1024
    max_pad_fraction: float = 0.25
    pad_mode: str = "reflect"
    min_sharpness: float = 0.0
    sharpness_weight: float = 1.0
    jpeg_quality: int = 95
    # neutral expression on the face mesh (ours, beyond the paper's angle filters: docs/DATA.md)
    neutral_filter: str = "refuse"          # refuse: a frame that is not neutral is "not_neutral" | flag: kept, ranked last, marked
    neutral_max_mouth_open: float = 0.04
    neutral_max_smile: float = 0.03
    neutral_min_smile: float = -0.04
    neutral_min_eye_open: float = 0.17
    neutral_brow_range: tuple[float, float] = (0.12, 0.28)
    neutral_weight: float = 2.0

    def validate(self) -> None:
        if self.candidates_per_video < 1 or self.keep_per_video < 1:
            raise ValueError("ingest.candidates_per_video and keep_per_video must be >= 1")
        if self.box_scale < 1.0:
            raise ValueError("ingest.box_scale must be >= 1 (the crop holds the whole box)")
        if self.pad_mode not in ("reflect", "replicate", "constant"):
            raise ValueError("ingest.pad_mode must be reflect, replicate or constant")
        if not 0.0 <= self.max_pad_fraction <= 1.0:
            raise ValueError("ingest.max_pad_fraction must be within [0, 1]")
        if not self.keep_categories:
            raise ValueError("ingest.keep_categories must name at least one category")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("ingest.jpeg_quality must be within [1, 100]")
        if self.neutral_filter not in ("refuse", "flag"):
            raise ValueError("ingest.neutral_filter must be refuse or flag")
        if (self.neutral_max_mouth_open <= 0 or self.neutral_max_smile <= 0 or self.neutral_min_smile >= 0
                or self.neutral_min_eye_open <= 0 or not 0 <= self.neutral_brow_range[0] < self.neutral_brow_range[1]):
            raise ValueError("ingest.neutral_*: max_mouth_open, max_smile, min_eye_open > 0, min_smile < 0, "
                             "brow_range [low < high]")
