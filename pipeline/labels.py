"""Canonical face-parsing labels (docs/DATA.md). Backends map their labels here by name."""
from __future__ import annotations

LABEL_NAMES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABEL_NAMES)}

# Paper 4.1: the inner face is always in the driving image; hair and neck only at random.
INNER_FACE: frozenset[str] = frozenset(
    {"skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip"}
)
OPTIONAL_REGIONS: tuple[str, ...] = ("hair", "neck")

# Names other checkpoints use for the same classes (lower-cased, separators removed).
ALIASES: dict[str, str] = {
    "eyeglasses": "eye_g", "glasses": "eye_g", "lefteye": "l_eye", "righteye": "r_eye",
    "leftbrow": "l_brow", "rightbrow": "r_brow", "lefteyebrow": "l_brow", "righteyebrow": "r_brow",
    "leftear": "l_ear", "rightear": "r_ear", "earring": "ear_r", "necklace": "neck_l",
    "upperlip": "u_lip", "lowerlip": "l_lip", "innermouth": "mouth", "clothes": "cloth", "bg": "background",
}


def canonical_label(name: str) -> str:
    """Map a backend's label name to its canonical name; KeyError if it has none."""
    key = name.strip().lower()
    if key in LABEL_IDS:
        return key
    squashed = key.replace("_", "").replace("-", "").replace(" ", "").replace(".", "")
    for canon in LABEL_NAMES:
        if canon.replace("_", "") == squashed:
            return canon
    if squashed in ALIASES:
        return ALIASES[squashed]
    raise KeyError(f"face-parsing label {name!r} has no canonical name")


def id_lookup(id2label: dict[int, str]) -> dict[int, int]:
    """Backend label id -> canonical id, by name."""
    return {int(i): LABEL_IDS[canonical_label(n)] for i, n in id2label.items()}
