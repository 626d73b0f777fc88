"""The `segment` stage: the offline mesh parser on the public-domain portraits, and a tiny random
SegFormer (labels in a shuffled order) saved and loaded through the real path."""
from __future__ import annotations

import json
import random

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.config.segment import SegmentParams
from pipeline.labels import INNER_FACE, LABEL_IDS
from stages.segment import run
from tests.fixtures.annotate_inputs import animate_with_blank
from tests.fixtures.relight_inputs import make_fake_annotate_inputs

LOCAL = RunnerParams(workers=0, progress=False)
CELEBAMASK = ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
              "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    animate, manifest = animate_with_blank(root, size=384, images=1, blank_image="i01")
    params = SegmentParams(input_dir=str(animate), out_dir=str(root / "out"))
    stats = run(params, LOCAL, seed=0).stats
    return params, stats, manifest


def test_mesh_parser_inner_face_in_face_box_and_covers_nose(mesh_run):
    params, stats, manifest = mesh_run
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    assert set(out.backend) == {"mesh"} and len(out) == 2
    inner_ids = [LABEL_IDS[n] for n in INNER_FACE]
    for row in manifest.itertuples():
        labels = cv2.imread(f"{params.out_dir}/sets/{row.face_id}/{row.image}.seg.png", cv2.IMREAD_UNCHANGED)
        assert labels.ndim == 2 and labels.dtype == np.uint8 and labels.shape == (384, 384)
        assert set(np.unique(labels)) <= set(LABEL_IDS.values())
        pts = np.array(json.loads(row.landmarks))  # five landmarks: eyes, nose tip, mouth corners
        d = np.linalg.norm(pts[1] - pts[0])
        x0, x1 = pts[:, 0].min() - 0.9 * d, pts[:, 0].max() + 0.9 * d
        y0, y1 = pts[:, 1].min() - 1.1 * d, pts[:, 1].max() + 1.1 * d
        inner = np.isin(labels, inner_ids)
        ys, xs = np.nonzero(inner)
        inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        assert inner.sum() > 0.5 * d * d and inside.mean() > 0.98
        nx, ny = np.round(pts[2]).astype(int)
        assert labels[ny, nx] == LABEL_IDS["nose"]
        counts = json.loads(out[(out.face_id == row.face_id) & (out.image == row.image)].label_counts.iloc[0])
        assert counts["nose"] > 0 and counts["skin"] > counts["nose"] and "hair" in counts
        assert sum(counts.values()) == labels.size
        # the eyes are where the landmarks say (subject's right eye = image left)
        for label, (ex, ey) in (("r_eye", pts[0]), ("l_eye", pts[1])):
            window = labels[int(ey) - 4 : int(ey) + 5, int(ex) - 4 : int(ex) + 5]
            assert (window == LABEL_IDS[label]).any()


def test_no_face_is_refused_and_preview_written(mesh_run):
    params, stats, _ = mesh_run
    assert stats["rejected"] == 1 and stats["reject_codes"] == {"no_face": 1}
    preview = cv2.imread(f"{params.out_dir}/preview.jpg")
    assert preview is not None and preview.shape[0] > 256


def _tiny_segformer(folder, order: list[str]) -> None:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    config = SegformerConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                             decoder_hidden_size=16, num_labels=19, id2label=dict(enumerate(order)),
                             label2id={n: i for i, n in enumerate(order)})
    model = SegformerForSemanticSegmentation(config).eval()
    # make the class named "nose" win everywhere (wherever the shuffle put it)
    classifier = model.decode_head.classifier
    with __import__("torch").no_grad():
        classifier.weight.zero_()
        classifier.bias.fill_(-5.0)
        classifier.bias[order.index("nose")] = 5.0
    model.save_pretrained(folder)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)


def test_segformer_random_model_maps_labels_by_name(tmp_path):
    order = CELEBAMASK[:]
    random.Random(3).shuffle(order)
    assert order.index("nose") != LABEL_IDS["nose"]
    _tiny_segformer(tmp_path / "segformer", order)
    animate, _ = make_fake_annotate_inputs(tmp_path, size=96, images=3, with_labels=False)
    params = SegmentParams(input_dir=str(animate), out_dir=str(tmp_path / "out"), backend="segformer",
                           segformer_dir=str(tmp_path / "segformer"), batch_size=4, device="cpu")
    stats = run(params, LOCAL, seed=0).stats
    assert stats["done"] == 6 and stats["rejected"] == 0
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    assert set(out.backend) == {"segformer"}
    for row in out.itertuples():
        labels = cv2.imread(f"{params.out_dir}/{row.path}", cv2.IMREAD_UNCHANGED)
        assert labels.shape == (96, 96) and (labels == LABEL_IDS["nose"]).all()
        assert json.loads(row.label_counts) == {"nose": 96 * 96}


def test_segformer_unmapped_label_is_an_error(tmp_path):
    order = CELEBAMASK[:-1] + ["sunglasses_strap"]
    _tiny_segformer(tmp_path / "segformer", order)
    params = SegmentParams(segformer_dir=str(tmp_path / "segformer"), backend="segformer", device="cpu")
    from pipeline.backends.parsers import build_parser

    from pipeline.weight_files.checks import WeightsFormatError

    with pytest.raises(WeightsFormatError, match=r"config.json.*sunglasses_strap"):
        build_parser(params).setup()


@pytest.mark.gpu
def test_segformer_bf16_on_gpu(tmp_path):
    order = CELEBAMASK[:]
    random.Random(5).shuffle(order)
    _tiny_segformer(tmp_path / "segformer", order)
    animate, _ = make_fake_annotate_inputs(tmp_path, size=128, images=2, with_labels=False)
    params = SegmentParams(input_dir=str(animate), out_dir=str(tmp_path / "out"), backend="segformer",
                           segformer_dir=str(tmp_path / "segformer"), batch_size=4, device="cuda")
    assert run(params, LOCAL, seed=0).stats["done"] == 4
    labels = cv2.imread(f"{params.out_dir}/sets/v0000-f000000/i00.seg.png", cv2.IMREAD_UNCHANGED)
    assert (labels == LABEL_IDS["nose"]).all()
