"""What the per-image annotation stages (`caption`, `segment`) share: their items, the batch
stage base class, GPU-side preprocessing and how many Ray actors they get (images are read
through pipeline/media/images.py, devices resolved by pipeline/device.py).

Items are the images of `data/animate` (one row of its manifest each, id `<face_id>-<image>`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from pipeline.media.images import read_rgb
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, Output, Stage


def animate_items(input_dir: str) -> list[Item]:
    """One item per row of `<input_dir>/manifest.parquet`; data carries the row's columns and
    the image's absolute path."""
    manifest = Path(input_dir) / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: run `piq animate` first (input_dir)")
    rows = pd.read_parquet(manifest)
    missing = [c for c in ("face_id", "image", "path") if c not in rows.columns]
    if missing:
        raise ValueError(f"{manifest}: missing column(s) {missing}")
    items = []
    for row in rows.to_dict("records"):
        data = {k: (None if _is_nan(v) else v) for k, v in row.items()}
        data["file"] = str(Path(input_dir) / row["path"])
        items.append(Item(f"{row['face_id']}-{row['image']}", data))
    return items


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def default_workers(workers: int | None, offline: bool, device: str, num_gpus: float, runner_workers: int) -> int:
    """Ray actors when the stage's `workers` is null: none when the runner is set in-process
    (`runner.workers: 0`, no Ray), else every core for an offline backend, one actor per GPU
    share for a model backend, and in-process when there is no GPU."""
    if workers is not None:
        return workers
    if not runner_workers:
        return 0
    if offline:
        return max(os.cpu_count() or 1, 1)
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        gpus = 0
    if gpus == 0 or device == "cpu" or num_gpus <= 0:
        return 0
    return max(int(gpus / num_gpus), 1)


def gpu_resources(model_backend: bool, device: str, num_gpus: float) -> dict[str, float]:
    """What one Ray actor asks for: a GPU share for a model backend that may use one."""
    if model_backend and device != "cpu" and num_gpus > 0:
        return {"num_cpus": 1, "num_gpus": num_gpus}
    return {"num_cpus": 1}


def preview_images(params: Any, max_images: int) -> list[tuple[dict, np.ndarray]]:
    """(manifest row, RGB image) of the first face in `params.out_dir`'s manifest, up to
    `max_images` in image order; empty before the stage has made anything."""
    manifest = Path(params.out_dir) / "manifest.parquet"
    if not manifest.is_file():
        return []
    rows = pd.read_parquet(manifest)
    if rows.empty:
        return []
    rows = rows[rows.face_id == rows.iloc[0].face_id].sort_values("image").head(max_images)
    animate = pd.read_parquet(Path(params.input_dir) / "manifest.parquet").set_index(["face_id", "image"])
    return [(row, read_rgb(str(Path(params.input_dir) / animate.loc[(row["face_id"], row["image"]), "path"])))
            for row in rows.to_dict("records")]


class ImageBatchStage(Stage):
    """A stage whose item is one image of `data/animate` (`item.data["file"]`), annotated in
    batches by a backend chosen in its params (`params.backend`; `offline_backend` names the one
    that needs no GPU): unreadable images are refused one by one, the rest go to `annotate`
    together. Only the params are shipped to a Ray worker; each worker builds its own backend."""

    params: Any
    offline_backend: ClassVar[str] = ""
    worker_local: ClassVar[tuple[str, ...]] = ("_impl",)

    def __post_init__(self) -> None:
        self._impl = None

    def build(self) -> Any:
        """The backend object named by the params, not yet set up."""
        raise NotImplementedError

    @property
    def batch_size(self) -> int:  # the runner hands model backends whole batches
        return 1 if self.params.backend == self.offline_backend else self.params.batch_size

    @property
    def resources(self) -> dict[str, float]:
        p = self.params
        return gpu_resources(p.backend != self.offline_backend, p.device, p.num_gpus)

    def setup(self) -> None:
        if self._impl is None:
            self._impl = self.build()
            self._impl.setup()

    @property
    def backend(self) -> Any:
        self.setup()
        return self._impl

    def annotate(self, images: list[np.ndarray], items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        raise NotImplementedError

    def process(self, item: Item, ctx: ItemContext) -> Output:
        result = self.process_batch([item], [ctx])[0]
        if isinstance(result, Reject):
            raise result
        return result

    def process_batch(self, items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        results: list[Output | Reject | None] = [None] * len(items)
        images, where = [], []
        for k, item in enumerate(items):
            try:
                images.append(read_rgb(item.data["file"]))
                where.append(k)
            except Reject as rej:
                results[k] = rej
        if images:
            done = self.annotate(images, [items[k] for k in where], [ctxs[k] for k in where])
            for k, result in zip(where, done):
                results[k] = result
        return results


def _size_key(size: Any, key: str) -> Any:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def pixel_batch(images: list[np.ndarray], image_processor: Any, device: Any, dtype: Any):
    """The model input a Hugging Face image processor would make (resize, centre crop, rescale,
    normalise, with its own sizes, resampling and statistics), computed in torch on `device`.

    Why: the processors work image by image on the CPU in PIL (~10 ms for a 1024 px image),
    which caps a GPU model at ~100 images/s per worker; this does the same on the GPU. Resampling
    differs from PIL's only in rounding (tests/test_caption.py compares them)."""
    import torch
    import torch.nn.functional as F

    ip = image_processor
    mode = {2: "bilinear", 3: "bicubic"}.get(int(getattr(ip, "resample", 2) or 2), "bilinear")
    size = ip.size
    # one upload and one resize for a batch of equal sizes (the usual case: 1024 px images)
    same = len({img.shape for img in images}) == 1
    groups = [np.stack(images)] if same else [img[None] for img in images]
    out = []
    for group in groups:
        x = torch.from_numpy(np.ascontiguousarray(group)).to(device).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        if getattr(ip, "do_resize", True):
            short = _size_key(size, "shortest_edge")
            if short:
                scale = short / min(h, w)
                new = (max(int(short if h <= w else round(h * scale)), 1), max(int(short if w <= h else round(w * scale)), 1))
            else:
                new = (int(_size_key(size, "height")), int(_size_key(size, "width")))
            x = F.interpolate(x, size=new, mode=mode, align_corners=False, antialias=True)
        if getattr(ip, "do_center_crop", False) and getattr(ip, "crop_size", None) is not None:
            ch, cw = int(_size_key(ip.crop_size, "height")), int(_size_key(ip.crop_size, "width"))
            top, left = (x.shape[-2] - ch) // 2, (x.shape[-1] - cw) // 2
            x = x[..., top : top + ch, left : left + cw]
        out.append(x)
    x = torch.cat(out).clamp_(0, 255)
    if getattr(ip, "do_rescale", True):
        x = x * float(ip.rescale_factor)
    if getattr(ip, "do_normalize", True):
        mean = torch.tensor(ip.image_mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(ip.image_std, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
    return x.to(dtype)


def run_annotation(stage: ImageBatchStage, runner_params: Any, seed: int, preview: Callable[[Any], Any] | None = None):
    """Run `stage` over every image of its `params.input_dir`, then write its preview."""
    from pipeline.engine.runner import Runner

    p = stage.params
    summary = Runner(runner_params, seed).run(stage, animate_items(p.input_dir), p.out_dir)
    if p.preview and preview is not None:
        preview(p)
    return summary


def annotation_main(args: Any, section: str, stage_cls: type, preview: Callable[[Any], Any], made: str) -> int:
    """`piq caption` / `piq segment`: params, workers, run, stats report, one summary line."""
    import dataclasses

    from pipeline.config.params import load_params
    from pipeline.engine.runner import end_main

    all_params = load_params(args.params)
    p = getattr(all_params, section)
    workers = args.workers if args.workers is not None else default_workers(
        p.workers, p.backend == stage_cls.offline_backend, p.device, p.num_gpus, all_params.runner.workers)
    summary = run_annotation(stage_cls(p), dataclasses.replace(all_params.runner, workers=workers), all_params.seed, preview)
    stats = summary.stats
    return end_main(stats, f"{section} ({p.backend}): {stats['items']} images, {stats['done']} {made}, "
                           f"{stats['rejected']} refused {stats['reject_codes']}, {summary.skipped} already done -> "
                           f"{p.out_dir}", args.report)


def add_annotation_arguments(parser: Any, section: str) -> None:
    parser.add_argument("--workers", type=int, default=None, help=f"Ray actors (0 = no Ray); default: {section}.workers")
    parser.add_argument("--report", default=f"reports/{section}_stats.json", help="where to copy stats.json (stats without timings)")
