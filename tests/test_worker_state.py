"""Per-worker state (models, caches) never travels with a pickled stage or backend: one mechanism
(pipeline/engine/worker_state.py), not a `__getstate__` per class."""
from __future__ import annotations

import ast
import collections
import pickle
from pathlib import Path

from pipeline.backends.captioners.attributes import AttributeCaptioner
from pipeline.config.caption import CaptionParams
from pipeline.config.relight import RelightParams
from pipeline.faces.mesh import FaceMeshDetector
from pipeline.backends.relighters.sh import SHRelighter
from pipeline.engine.worker_state import WorkerLocal
from stages.caption import CaptionStage

REPO = Path(__file__).resolve().parents[1]


class Cached(WorkerLocal):
    worker_local = ("model", "cache")

    def __init__(self) -> None:
        self.params = {"k": 1}
        self.model = lambda: None  # stands for a loaded model: not picklable
        self.cache = collections.OrderedDict(a=1)


class MoreCached(Cached):
    worker_local = ("session",)

    def __init__(self) -> None:
        super().__init__()
        self.session = lambda: None  # not picklable: must not be shipped


def test_listed_attributes_travel_empty_and_names_add_up_along_the_hierarchy() -> None:
    obj = pickle.loads(pickle.dumps(MoreCached()))
    assert obj.params == {"k": 1}
    assert obj.model is None and obj.session is None
    assert isinstance(obj.cache, collections.OrderedDict) and not obj.cache
    assert MoreCached.worker_local_names() == {"model", "cache", "session"}


def test_stages_and_backends_ship_without_their_models() -> None:
    stage = CaptionStage(CaptionParams())
    stage.setup()  # builds the attributes captioner (mesh detector built lazily)
    assert stage._impl is not None
    shipped = pickle.loads(pickle.dumps(stage))
    assert shipped._impl is None and shipped.params == stage.params
    detector = FaceMeshDetector(max_faces=1)
    detector._model = lambda: None
    assert pickle.loads(pickle.dumps(detector))._model is None
    relighter = SHRelighter(RelightParams())
    relighter._detector = lambda: None
    assert pickle.loads(pickle.dumps(relighter))._detector is None
    captioner = AttributeCaptioner(CaptionParams())
    captioner._mesh = lambda: None
    assert pickle.loads(pickle.dumps(captioner))._mesh is None


def test_no_hand_written_getstate_left() -> None:
    """Only the mixin defines __getstate__ in the product's packages."""
    found = []
    for pkg in ("pipeline", "stages"):
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and node.name in ("__getstate__", "__setstate__"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == ["pipeline/engine/worker_state.py:24", "pipeline/engine/worker_state.py:31"], found
