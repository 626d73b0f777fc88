"""Every family of pluggable parts is one `Registry`: each name resolves to a class satisfying the
family's interface (nothing built, no model loaded), an unknown name is a one-line error naming
the known ones, and building an offline default imports no torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

from eval.baselines import BASELINES
from facereplace.methods import FACE_METHODS
from pipeline.backends.animators.factory import ANIMATORS
from pipeline.backends.captioners import CAPTIONERS
from pipeline.backends.parsers import PARSERS
from pipeline.registry import Registry
from pipeline.backends.relighters import RELIGHTERS

FAMILIES = {"animators": ANIMATORS, "captioners": CAPTIONERS, "parsers": PARSERS, "relighters": RELIGHTERS,
            "photo methods": FACE_METHODS, "baselines": BASELINES}
ENTRIES = [(family, name) for family, reg in FAMILIES.items() for name in reg.names()]


@pytest.mark.parametrize(("family", "name"), ENTRIES, ids=[f"{f}:{n}" for f, n in ENTRIES])
def test_every_name_resolves_to_a_class_of_its_familys_interface(family: str, name: str) -> None:
    reg = FAMILIES[family]
    assert callable(reg.resolve(name))
    made = reg.product(name)
    assert isinstance(made, type) and reg.satisfied_by(made), (family, name, made)


def test_the_names_are_the_ones_params_accept() -> None:
    from pipeline.config.evaluate import EvaluateParams

    assert ANIMATORS.names() == ("mesh", "liveportrait")
    assert CAPTIONERS.names() == ("attributes", "llava")
    assert PARSERS.names() == ("mesh", "segformer")
    assert RELIGHTERS.names() == ("sh", "neural_gaffer")
    assert FACE_METHODS.names() == ("classical", "piq")
    assert set(BASELINES.names()) == set(EvaluateParams().methods)


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unknown_name_is_one_line_naming_the_known_ones(family: str) -> None:
    reg = FAMILIES[family]
    with pytest.raises(ValueError) as err:
        reg.build("nope", None)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"unknown {reg.family} 'nope'")
    assert all(name in text for name in reg.names())


def test_public_builders_keep_their_messages() -> None:
    from pipeline.backends.animators.factory import build_animator
    from pipeline.config.animate import AnimateParams

    with pytest.raises(ValueError, match=r"unknown animate.backend 'x' \(mesh \| liveportrait\)"):
        build_animator(AnimateParams(backend="x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="animate.liveportrait_dir is not set"):
        build_animator(AnimateParams(backend="liveportrait"))


def test_a_built_object_outside_the_interface_is_refused() -> None:
    reg = Registry("toy", Registry, {"wrong": "builtins:dict"})
    assert reg.names() == ("wrong",) and reg.product("wrong") is dict and not reg.satisfied_by(dict)
    with pytest.raises(TypeError, match="toy 'wrong' made a dict, which is not a Registry"):
        reg.build("wrong")


OFFLINE_DEFAULTS = """
import sys
from pipeline.backends.animators.factory import build_animator
from pipeline.backends.captioners import build_captioner
from pipeline.config.animate import AnimateParams
from pipeline.config.caption import CaptionParams
from pipeline.config.relight import RelightParams
from pipeline.config.segment import SegmentParams
from pipeline.backends.parsers import build_parser
from pipeline.backends.relighters import build_relighter

build_animator(AnimateParams()), build_captioner(CaptionParams())
build_parser(SegmentParams()), build_relighter(RelightParams())
print(sorted(m for m in ("torch", "transformers", "diffusers") if m in sys.modules))
"""


def test_building_the_offline_defaults_imports_no_torch() -> None:
    """The stages' offline backends (as measured before the registry: none imported torch);
    the photo tool's and evaluation's classical methods import torch today, through the face
    detector, and are not held to this."""
    out = subprocess.run([sys.executable, "-c", OFFLINE_DEFAULTS], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_a_registrys_entries_are_code_its_stage_runs() -> None:
    """Built by name, imported only when chosen, a backend still counts in its stage's code
    fingerprint and dvc.yaml deps (pipeline/engine/codegraph.py reads the registry's entries)."""
    from pipeline.engine import codegraph

    assert {"pipeline.backends.animators.mesh_animator", "pipeline.backends.animators.liveportrait.animator"} \
        <= set(codegraph.closure("stages.animate"))
    assert {"pipeline.backends.captioners.attributes", "pipeline.backends.captioners.llava"} <= set(codegraph.closure("stages.caption"))
    assert {"eval.baselines.paste", "eval.baselines.piq"} <= set(codegraph.closure("stages.evaluate"))
