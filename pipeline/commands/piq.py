"""`piq`: the one command line of PiQPerfect. Every dvc.yaml stage calls `piq <stage>`.

Subcommands are registered by name with the module that implements them and imported only
when run, so `piq --help` stays fast and a stage's heavy imports (torch, Ray) cost nothing to
the others. A command module provides `add_arguments(parser)` (optional) and `main(args) -> int`;
"module:attr" names an object of the module that provides them (several commands in one module).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from pipeline import quiet
from pipeline.engine.cluster import ClusterError

VERBOSE_HELP = ("show the libraries' own log lines (Ray, its workers, mediapipe, TF Lite, FFmpeg) and tracebacks; "
                "servers (app, browse) also log every request and each refusal's reason; quiet by default")

# name -> (module, one-line help). Keep in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("stages.ingest", "sample frames of the crowdsourced clips, keep frontal neutral faces, crop 1024 px (paper B.2)"),
    "drivers": ("stages.drivers", "the driving-video library: 200+ rendered motion programs and checked user clips (paper 3.2, B.2)"),
    "animate": ("stages.animate", "animate every neutral face with 20 drivers, keep each last frame: 21 images a set (paper 3.2, B.2)"),
    "caption": ("stages.caption", "a detailed caption for every animated image: LLaVA-1.5 or words for the measured expression, pose "
                                  "and light (paper 3.2, B.3)"),
    "segment": ("stages.segment", "a face-parsing label map (canonical ids) for every animated image: SegFormer or dense-mesh polygons "
                                  "(paper 4.1)"),
    "relight": ("stages.relight", "relight the face and hair of every animated image under K environment maps (paper 4.1, A.1)"),
    "shard": ("stages.shard", "pack the identity sets into WebDataset shards, split train / test_id / test_ood by identity, with index "
                              "and dataset card"),
    "latents": ("stages.latents", "the VAE latents of every training image, as it is and mirrored, so training encodes only the driving "
                                  "face (issue 18)"),
    "shards": ("pipeline.release.verify", "check released shards: `piq shards verify DIR` re-reads, decodes and checksums every sample"),
    "release": ("pipeline.release.remove", "`piq release remove --participant ID --reason TEXT` (or --video ID): take a person out of "
                                           "the release and keep them out; `piq release digest`: what it means, for cross-machine checks"),
    "browse": ("pipeline.browse.server", "page through released shards in a local web page (no CDN): `piq browse DIR`"),
    "train": ("stages.train", "fine-tune the backbone on [source | driving | noisy target] (paper 3.1, 4.1)"),
    "distill": ("stages.distill", "distil the trained model into a few-step student, guidance folded in, for sample.mode: fast"),
    "sample": ("stages.sample", "sample test pairs with the trained model: 50 steps, guidance 1.5 (paper A.1)"),
    "evaluate": ("stages.evaluate", "ID / OOD test sets, every method, CSIM FID AED APD AGD LPIPS PSNR SSIM +- SEM, tables (paper 4.2)"),
    "exp": ("pipeline.commands.exp_show", "`piq exp show`: dvc exp show with the headline columns only (the params that differ, the "
                                          "metrics, no dep hashes)"),
    "params": ("pipeline.commands.params_show", "validate params.yaml and print it as resolved"),
    "platform": ("pipeline.commands.platform_record", "the CPU features, Python and installed packages that wrote dvc.lock "
                                                      "(dvc.platform.json; --write records this machine)"),
    "deps": ("pipeline.commands.code_deps", "check dvc.yaml's code deps against the import graph (--write regenerates them)"),
    # the photo tool (facereplace/): not a stage; "module:attr" names one command of a module
    "faces": ("facereplace.cli:faces", "every face of a photo, numbered left to right: box, score, pose, eyes open, smile (--preview)"),
    "replace": ("facereplace.cli:replace", "replace a face of PHOTO with the same person's face from REF, watermarked and marked as "
                                           "edited"),
    "verify": ("facereplace.cli:verify", "print an image's invisible watermark and edit provenance; exit 1 when it carries neither"),
    "best-take": ("facereplace.best_take_cli", "each person's best face of a burst in one photo: base = fewest replacements, --plan to "
                                               "choose, contact sheet"),
    "provenance": ("facereplace.provenance_cli", "content credentials: `piq provenance init` makes a local C2PA signing pair for the "
                                                 "photo tool"),
    "app": ("facereplace.app.server", "the photo tool as a local web page (no CDN): open photos, click a face, choose its replacement, "
                                      "download"),
    "models": ("pipeline.commands.models_check", "`piq models check`: are the configured paper models' files complete and in the "
                                                 "published layout; `piq models layout`: what goes where"),
}


def command_module(name: str):
    """The object implementing command `name`: its module, or "module:attr"'s attribute."""
    target, _, attr = COMMANDS[name][0].partition(":")
    module = importlib.import_module(target)
    return getattr(module, attr) if attr else module


def version() -> str:
    """The installed package's version (its metadata: no import of the package's code)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("piqperfect")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piq", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--version", action="version", version=f"piq (PiQPerfect) {version()}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    quiet.configure(args.verbose or "--verbose" in rest)  # before the command's libraries load
    module = command_module(args.command)
    sub = argparse.ArgumentParser(prog=f"piq {args.command}", description=COMMANDS[args.command][1])
    sub.add_argument("--params", default=args.params, help="params file (default: params.yaml)")
    sub.add_argument("--verbose", action="store_true", default=args.verbose, help=VERBOSE_HELP)
    if hasattr(module, "add_arguments"):
        module.add_arguments(sub)
    sub_args = sub.parse_args(rest)
    try:
        return int(module.main(sub_args) or 0)
    except ClusterError as err:  # RAY_ADDRESS names a cluster this process cannot join as set up
        print(f"piq {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
