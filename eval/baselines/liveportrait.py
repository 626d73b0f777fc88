"""LivePortrait (Guo et al. 2024) as a baseline of the paper's table 1, replacement-ID only.

The paper (4.2, baselines): "In the ID setting, we simulate a two-frame video by treating the
source and driving images as sequential frames"; LivePortrait "is excluded from the OOD setting
due to the absence of driving videos compatible with this setup". So the source is the image
animated and the two-frame driving video is (source, driving): with LivePortrait's relative
motion the output is the source moved by the motion from the first frame (the source itself) to
the second (the driving image). `settings = ("ID",)`: the evaluator lists the method as not
applicable on other data sets.

It runs through the animate stage's backend (pipeline/backends/animators/liveportrait, built by
`build_animator`): the same loader of the official `base_models/` and `retargeting_models/`
files, with the backend's defaults (the official inference defaults), on `evaluate.device`.
Weights: `evaluate.liveportrait_dir`, or `animate.liveportrait_dir` when that is not set; neither
set -> `Unavailable` with the reason. A configured folder that is missing or holds files of
another layout raises `WeightsFormatError` (an error, not "unavailable").
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from eval.baselines import Unavailable
from eval.data import Triplet
from pipeline.weight_files.checks import WeightsFormatError

LIVEPORTRAIT_FORMATS = ("LivePortrait pretrained_weights/liveportrait/ "
                        "(base_models/*.pth, retargeting_models/stitching_retargeting_module.pth)",)


class LivePortraitBaseline:
    name = "liveportrait"
    settings = ("ID",)

    def __init__(self, params, animator=None) -> None:
        """`params`: the evaluate section (`liveportrait_dir`, `device`, `batch_size`);
        `animator`: an already built animator (tests pass one with tiny random networks)."""
        if animator is None:
            folder = params.liveportrait_dir
            if not folder:
                raise Unavailable("evaluate.liveportrait_dir (or animate.liveportrait_dir) is not set: a folder with "
                                  "LivePortrait's base_models/ and retargeting_models/")
            from pipeline.backends.animators.factory import build_animator
            from pipeline.config.animate import AnimateParams

            animator = build_animator(AnimateParams(backend="liveportrait", liveportrait_dir=folder,
                                                    device=params.device or "auto", batch_size=params.batch_size))
            try:
                animator.setup()
            except WeightsFormatError:
                raise
            except (FileNotFoundError, KeyError, RuntimeError) as err:  # a missing file, entry or mismatched tensor
                raise WeightsFormatError(folder, LIVEPORTRAIT_FORMATS, str(err)) from err
        self.animator = animator

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]:
        from pipeline.rejection import Reject

        outs: list[np.ndarray | None] = []
        for t in batch:
            try:
                outs.append(self.animator.animate(t.source, t.source, t.driving, seed=0).image)
            except Reject as err:  # no face in the source or the driving image: a method failure
                warnings.warn(f"liveportrait: pair {t.pair_id}: {err}", stacklevel=2)
                outs.append(None)
        return outs
