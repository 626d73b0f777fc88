"""Images/s of the `animate` stage's backends through the product's entry points.

    python -m bench.animate                       # mesh backend, one core: animate vs animate_batch, and the stage
    python -m bench.animate --backend liveportrait --device cuda   # LivePortrait, random weights of the real sizes

The mesh backend runs `MeshAnimator.animate` (one driver at a time: the neutral face's mesh is
found for every call) and `animate_batch` (the mesh once per face, driver motions cached), then
the whole `AnimateStage.process` (drivers drawn, clips read, images measured and encoded) on
1024 px ingest-like faces, in-process with one thread. The LivePortrait backend is timed by
bench/liveportrait.py (batched vs one at a time on the GPU), called from here.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2


def mesh_figures(drivers: int, faces: int) -> None:
    from pipeline.backends.animators.mesh_animator import MeshAnimator, render_program
    from pipeline.backends.animators.programs import programs
    from pipeline.config.animate import AnimateParams, DriversParams
    from pipeline.config.runner import RunnerParams
    from pipeline.engine.runner import Runner
    from pipeline.engine.stage import ItemContext
    from stages.animate import AnimateStage, list_items
    from stages.drivers import DriversStage, list_items as driver_items, template_face
    from tests.fixtures.portraits import make_fake_ingest

    cv2.setNumThreads(1)
    animator = MeshAnimator()
    template = template_face(256)
    progs = programs()[:: max(1, len(programs()) // drivers)][:drivers]
    clips = [render_program(template, p.controls, 2, animator) for p in progs]
    with tempfile.TemporaryDirectory() as tmp:
        ingest = make_fake_ingest(Path(tmp) / "ingest", size=1024)
        neutral = cv2.cvtColor(cv2.imread(str(next((ingest / "faces").glob("*.jpg")))), cv2.COLOR_BGR2RGB)
        animator.animate(neutral, clips[0][0], clips[0][-1])  # warm-up: model load
        t0 = time.perf_counter()
        for clip in clips:
            animator.animate(neutral, clip[0], clip[-1])
        single = len(clips) / (time.perf_counter() - t0)
        animator._motions.clear()
        t0 = time.perf_counter()
        animator.animate_batch(neutral, [(c[0], c[-1]) for c in clips], seeds=list(range(len(clips))))
        batched = len(clips) / (time.perf_counter() - t0)
        dparams = DriversParams(out_dir=str(Path(tmp) / "drivers"), frames=4)
        Runner(RunnerParams(workers=0, progress=False), 0).run(DriversStage(dparams), driver_items(dparams)[:60],
                                                                  dparams.out_dir)
        params = AnimateParams(ingest_dir=str(ingest), drivers_dir=dparams.out_dir, out_dir=str(Path(tmp) / "animate"))
        stage = AnimateStage(params)
        items = list_items(params)[:faces]
        stage.process(items[0], ItemContext(seed=0))  # warm-up: driver clips read once per worker
        t0 = time.perf_counter()
        for k, item in enumerate(items):
            stage.process(item, ItemContext(seed=k + 1))
        stage_rate = len(items) * params.per_face / (time.perf_counter() - t0)
    print(f"mesh backend, 1024 px, one core: animate {single:6.2f} images/s, animate_batch {batched:6.2f} images/s "
          f"(x{batched / single:.2f}); AnimateStage.process {stage_rate:6.2f} images/s incl. measuring and JPEG "
          f"(x{stage_rate / batched:.2f} of animate_batch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["mesh", "liveportrait"], default="mesh")
    parser.add_argument("--drivers", type=int, default=20)
    parser.add_argument("--faces", type=int, default=3)
    args, rest = parser.parse_known_args()
    if args.backend == "mesh":
        mesh_figures(args.drivers, args.faces)
        return
    from bench import liveportrait

    sys.argv = [sys.argv[0], *rest]
    liveportrait.main()


if __name__ == "__main__":
    main()
