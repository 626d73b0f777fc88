"""`piq shards verify`: a good release passes; a truncated shard, a flipped byte and a missing
member are each named with their shard and sample, and the command exits non-zero."""
from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

from pipeline.commands.piq import main as piq
from pipeline.release.shards import tar_offsets


def test_a_good_release_verifies(tiny_release: Path, capsys) -> None:
    assert piq(["shards", "verify", str(tiny_release)]) == 0
    assert "3 shards, 3 samples read" in capsys.readouterr().out


def test_truncated_flipped_and_missing_member_are_each_named(tiny_release: Path, tmp_path: Path, capsys) -> None:
    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    split = release / "train"
    shards = sorted(split.glob("*.tar"))
    keys = {s.name: next(iter(tar_offsets(s))) for s in shards}
    # 1. truncated: cut inside the sample's second image
    offset, _ = tar_offsets(shards[0])[keys[shards[0].name]]["i01.jpg"]
    shards[0].write_bytes(shards[0].read_bytes()[: offset + 100])
    # 2. one flipped byte inside a JPEG's entropy-coded data (the tar itself still reads)
    offset, size = tar_offsets(shards[1])[keys[shards[1].name]]["i02.jpg"]
    data = bytearray(shards[1].read_bytes())
    data[offset + size // 2] ^= 0x01
    shards[1].write_bytes(bytes(data))
    # 3. a member removed: the shard rewritten without i01.seg.png
    with tarfile.open(shards[2]) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if not m.name.endswith("i01.seg.png")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, content in members:
            tar.addfile(member, io.BytesIO(content))
    shards[2].write_bytes(buf.getvalue())

    assert piq(["shards", "verify", str(release)]) == 1
    out = capsys.readouterr().out
    broken = [line for line in out.splitlines() if line.startswith("BROKEN")]
    k0, k1, k2 = (keys[s.name] for s in shards)
    assert any(f"train-000000.tar: sample {k0}: the tar breaks here" in line for line in broken), out
    assert any("train-000000.tar" in line and "truncated" in line for line in broken), out
    assert any(f"train-000001.tar: sample {k1}: content differs from the index" in line for line in broken), out
    assert any(f"train-000002.tar: sample {k2}: missing member(s) ['i01.seg.png']" in line for line in broken), out
    assert "problem(s)" in out.splitlines()[-1]


def test_a_missing_shard_and_a_folder_that_is_no_release(tiny_release: Path, tmp_path: Path, capsys) -> None:
    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    (release / "train" / "train-000001.tar").unlink()
    assert piq(["shards", "verify", str(release / "train")]) == 1
    assert "train-000001.tar: missing shard" in capsys.readouterr().out
    assert piq(["shards", "verify", str(tmp_path)]) == 1
    assert "not a release" in capsys.readouterr().out
