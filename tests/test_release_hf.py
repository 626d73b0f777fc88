"""The release as users of face datasets load it (issue 27 item 1; issue 31 item 5).

Hugging Face `datasets` reads every split the card lists, streaming and not, through the card's
YAML `configs` (what the Hub's viewer does); counts and keys match `index.json`; each image's
caption is a text field; label maps are one channel with ids named by `label_names`;
`webdataset` decodes them one channel too. An empty split is left out of the configs, said
empty by the shard stage and by `piq shards verify`, and `piq train` / `piq latents` refuse an
empty train split with one line (exit 2)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.labels import LABEL_NAMES
from tests.fixtures.portraits import make_fake_ingest
from tests.fixtures.release import build_release

REPO = Path(__file__).resolve().parents[1]
SPLIT_SEED = 0  # with test_ood_fraction 0.5: pastronaut (two clips) -> test_ood, phopper -> train, test_id empty


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf")
    ingest = make_fake_ingest(root / "ingest", size=64)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    return build_release(root, ingest, n_expressive=2, n_relit=2, size=48, max_sets_per_shard=1, split_seed=SPLIT_SEED,
                         test_id_fraction=0.0, test_ood_fraction=0.5, hold_out_min_identities=0)


def _index(release: Path, split: str) -> dict:
    return json.loads((release / split / "index.json").read_text())


def _front_matter(release: Path) -> dict:
    text = (release / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_configs_list_the_non_empty_splits_only(release: Path) -> None:
    meta = _front_matter(release)
    files = {d["split"]: d["path"] for d in meta["configs"][0]["data_files"]}
    assert set(files) == {"train", "test_ood"} and _index(release, "test_id")["n_shards"] == 0
    assert all(sorted(p.name for p in release.glob(path)) == [e["name"] for e in _index(release, s)["shards"]]
               for s, path in files.items()), "each pattern matches the split's tars and nothing else"
    assert "`test_id` is empty and not listed in `configs`" in (release / "README.md").read_text()


@pytest.mark.parametrize("streaming", [True, False])
def test_datasets_loads_every_listed_split_as_the_index_says(release: Path, streaming: bool, tmp_path: Path,
                                                             monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset(str(release), streaming=streaming, cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "test_ood"}
    for split in ds:
        index = _index(release, split)
        rows = list(ds[split])
        assert len(rows) == index["n_samples"]
        assert [r["__key__"] for r in rows] == [k for e in index["shards"] for k in e["keys"]]
        for row in rows:
            meta = row["meta.json"]
            assert meta["set_id"] == row["__key__"] and meta["split"] == split
            assert meta["label_names"] == list(LABEL_NAMES)
            names = datasets.ClassLabel(names=meta["label_names"])
            for img in meta["images"]:
                i = img["index"]
                assert row[f"{i}.txt"] == img["caption"] and row[f"{i}.txt"].strip()
                assert row[f"{i}.jpg"].mode == "RGB" and row[f"{i}.r2.jpg"].size == row[f"{i}.jpg"].size
                seg = np.asarray(row[f"{i}.seg.png"])
                assert row[f"{i}.seg.png"].mode == "L" and seg.shape == row[f"{i}.jpg"].size[::-1]
                assert names.int2str(int(seg.max())) in LABEL_NAMES and int(seg.max()) < names.num_classes
                present = {LABEL_NAMES[v] for v in np.unique(seg)}
                assert present == {n for n, c in img["label_counts"].items() if c}, "label_counts name every label"


def test_webdataset_decodes_label_maps_single_channel(release: Path) -> None:
    import webdataset as wds

    urls = [str(release / "train" / e["name"]) for e in _index(release, "train")["shards"]]
    seg = wds.handle_extension("seg.png", lambda b: np.asarray(Image.open(io.BytesIO(b))))
    sample = next(iter(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode(seg, "pil")))
    assert sample["i01.seg.png"].ndim == 2 and sample["i01.seg.png"].dtype == np.uint8
    assert sample["i01.jpg"].mode == "RGB" and sample["i01.txt"] == sample["meta.json"]["images"][1]["caption"]


def _piq(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["piq", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_an_empty_train_split_is_said_up_front_and_refused_in_one_line(tmp_path: Path, capfd) -> None:
    ingest = make_fake_ingest(tmp_path / "ingest", size=48)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    out = build_release(tmp_path, ingest, n_expressive=1, n_relit=1, size=32, split_seed=SPLIT_SEED, test_id_fraction=0.5,
                        test_ood_fraction=0.45, hold_out_min_identities=0)  # both people hash below 0.95: train empty
    said = capfd.readouterr().err
    assert "shard: train will be empty: 2 identities (3 clips) in all" in said and "hold_out_min_identities" in said
    assert "every identity" not in json.loads((out / "train" / "index.json").read_text())["empty"]
    verify = _piq("shards", "verify", str(out / "train"), cwd=tmp_path)
    assert verify.returncode == 0 and f"EMPTY {out / 'train'}: no sample in this split" in verify.stdout
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["shards"] = str(out / "train")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for command in ("latents", "train"):
        done = _piq(command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith(f"piq {command}: the split {out / 'train'} is empty") and "shard.hold_out_min_identities" in lines[0]


def test_few_identities_stay_in_train(tmp_path: Path, capfd) -> None:
    ingest = make_fake_ingest(tmp_path / "ingest", size=48)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    out = build_release(tmp_path, ingest, n_expressive=1, n_relit=1, size=32, split_seed=SPLIT_SEED, test_id_fraction=0.5,
                        test_ood_fraction=0.45, hold_out_min_identities=3)
    assert json.loads((out / "train" / "index.json").read_text())["n_samples"] == 3
    said = capfd.readouterr().err
    assert "shard: test_id will be empty: 2 identities (3 clips) in all, fewer than shard.hold_out_min_identities=3" in said
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["empty_splits"]) == {"test_id", "test_ood"}


def test_the_card_has_a_face_datasets_front_matter_and_sections(release: Path) -> None:
    meta = _front_matter(release)
    assert meta["pretty_name"] and meta["license"] == "other" and "public domain" in meta["license_details"]
    assert "image-to-image" in meta["task_categories"] and meta["size_categories"] == ["n<1K"]
    text = (release / "README.md").read_text()
    for section in ("Personal and biometric data", "Consent and source licences", "Intended use", "Out-of-scope use",
                    "Limitations and bias", "Removal on request", "Citation", "Label maps"):
        assert f"\n## {section}\n" in text, section
    for clip in ("v0000", "v0001", "v0002"):  # consent and licence per clip, from the metadata
        assert f"| {clip} | p" in text and "not required (public-domain photograph)" in text
    assert "identif" in text.split("## Out-of-scope use")[1].split("##")[0] and "cross-identity" in text
    assert "| 18 | cloth |" in text and "piq release remove --participant" in text
