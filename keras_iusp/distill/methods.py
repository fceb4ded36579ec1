"""The method registry: what baseline, KD, SP and IUSP are, in one place (no TensorFlow import).

For each method it holds the name tables print, whether it needs a teacher, the run settings it
reads (the grid's staleness check compares exactly these), the ``keras-iusp distill`` flags that
only it reads (a flag the chosen method would ignore is an error), and its search space for
``keras-iusp tune``. The CLI's ``--method`` choices, the grid, the report and the tuner all read
this module; the loss terms each method adds are built by
:func:`keras_iusp.train.recipe.distillation_losses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Settings every method reads: the optimiser, the schedule, the data and the seed.
COMMON_SETTINGS: tuple[str, ...] = ("method", "epochs", "batch_size", "learning_rate",
                                    "lr_schedule", "warmup_epochs", "augmentation", "seed")
#: Settings every distillation method reads on top of :data:`COMMON_SETTINGS`.
KD_SETTINGS: tuple[str, ...] = ("temperature", "student_loss_weight", "kd_weight",
                                "distill_epochs", "cross_fitted", "unlabeled", "unlabeled_ratio")
#: The IUSP similarity forms (``keras_iusp.distill.losses.IUSP_FORMS``, which imports
#: TensorFlow; a test keeps the two equal).
IUSP_FORM_NAMES: tuple[str, ...] = ("paper", "cosine", "centered")
#: Settings the grid checks but ``distill`` sets with its own flag (``--fold-teachers``).
NOT_A_METHOD_FLAG: frozenset[str] = frozenset({"cross_fitted"})

#: Shared search dimensions: the learning rate, whether the student trains on augmented
#: batches (for KD/SP/IUSP the teacher then sees the same batch: consistent teaching), and the
#: schedule's length (each run keeps its best validation epoch, so a longer schedule also gives
#: the early-stopping point more room; ``tune --epochs N`` fixes it instead).
_COMMON_SPACE: dict[str, tuple] = {"learning_rate": ("log", 1e-3, 1e-2),
                                   "augment": ("cat", [False, True]),
                                   "epochs": ("cat", [30, 60])}
#: Added for every distillation method: the KD temperature and the label-loss weight.
_KD_SPACE: dict[str, tuple] = {"temperature": ("cat", [1.0, 2.0, 4.0]),
                               "student_loss_weight": ("float", 0.0, 0.9)}


@dataclass(frozen=True)
class Method:
    """One training method of the comparison."""

    name: str
    label: str
    uses_teacher: bool
    #: every run setting the method reads, in the order the staleness check reports them
    settings: tuple[str, ...]
    #: search dimensions (``("log"|"float", low, high)`` or ``("cat", choices)``)
    search_space: dict[str, tuple] = field(default_factory=dict)

    @property
    def flags(self) -> tuple[str, ...]:
        """The ``distill`` options (as ``argparse`` dests) that only distillation methods read,
        and of them, those this method reads."""
        return tuple(s for s in self.settings
                     if s not in COMMON_SETTINGS and s not in NOT_A_METHOD_FLAG)


_REGISTRY: dict[str, Method] = {
    "baseline": Method("baseline", "baseline", False, COMMON_SETTINGS, dict(_COMMON_SPACE)),
    "kd": Method("kd", "KD", True, COMMON_SETTINGS + KD_SETTINGS,
                 {**_COMMON_SPACE, **_KD_SPACE}),
    "sp": Method("sp", "SP", True,
                 COMMON_SETTINGS + KD_SETTINGS + ("sp_weight", "teacher_layer", "student_layer"),
                 {**_COMMON_SPACE, **_KD_SPACE, "sp_weight": ("log", 1.0, 1e4),
                  "student_layer": ("cat", ["lstm", "frames"])}),
    "iusp": Method("iusp", "IUSP", True,
                   COMMON_SETTINGS + KD_SETTINGS
                   + ("iusp_weight", "iusp_form", "teacher_layer", "student_layer"),
                   {**_COMMON_SPACE, **_KD_SPACE, "iusp_weight": ("log", 0.3, 300.0),
                    "iusp_form": ("cat", list(IUSP_FORM_NAMES)),
                    "student_layer": ("cat", ["lstm", "frames"])}),
}

#: name -> :class:`Method`, read-only.
REGISTRY: MappingProxyType[str, Method] = MappingProxyType(_REGISTRY)
#: The method names, in the order tables and the CLI list them.
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def method(name: str) -> Method:
    """The registered method ``name``; KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {list(METHODS)}") from None


def label(name: str) -> str:
    """How tables name a method: the registry's label, or a variant's own name."""
    return REGISTRY[name].label if name in REGISTRY else name


def search_spaces() -> dict[str, dict[str, Any]]:
    """method -> a copy of its search space (the tuner's table)."""
    return {name: dict(m.search_space) for name, m in REGISTRY.items()}
