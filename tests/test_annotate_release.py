"""The caption and segment stages' outputs are what `piq shard` reads: a release built from them
carries their captions and label maps unchanged."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.config.caption import CaptionParams
from pipeline.config.runner import RunnerParams
from pipeline.config.segment import SegmentParams
from pipeline.release.reader import iter_sets
from stages import caption, segment
from stages.shard import build_release
from tests.fixtures.portraits import make_fake_ingest
from tests.fixtures.release import make_upstream, shard_params

RUN = RunnerParams(workers=0, progress=False)


def test_release_carries_our_captions_and_label_maps(tmp_path: Path) -> None:
    ingest = make_fake_ingest(tmp_path / "ingest", size=256)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    dirs = make_upstream(tmp_path, ingest, n_expressive=2, n_relit=1, size=256)
    for stage in ("caption", "segment"):
        shutil.rmtree(dirs[stage])
    caption.run(CaptionParams(input_dir=str(dirs["animate"]), out_dir=str(dirs["caption"]), preview=False), RUN, seed=0)
    segment.run(SegmentParams(input_dir=str(dirs["animate"]), out_dir=str(dirs["segment"]), preview=False), RUN, seed=0)
    stats = build_release(shard_params(tmp_path, ingest, test_id_fraction=0.0, test_ood_fraction=0.0), RUN, seed=0)
    assert stats["sets_refused"] == {}
    captions = pd.read_parquet(dirs["caption"] / "manifest.parquet").set_index(["face_id", "image"]).caption
    sets = list(iter_sets(tmp_path / "shards" / "train"))
    assert len(sets) == 3
    for s in sets:
        face = s.meta["set_id"]
        assert s.meta["backends"]["caption"] == "attributes" and s.meta["backends"]["segment"] == "mesh"
        for index in s.indices:
            assert s.caption(index) == captions[(face, index)]
            ours = cv2.imread(str(dirs["segment"] / "sets" / face / f"{index}.seg.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(s.labels[index], ours)
