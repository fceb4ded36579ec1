"""The distillation losses under their public name, ``keras_iusp.losses``.

They live in :mod:`keras_iusp.distill.losses`; this module re-exports its ``__all__`` so user code
and notebooks that import ``keras_iusp.losses`` keep working.
"""

from keras_iusp.distill.losses import *  # noqa: F403
from keras_iusp.distill.losses import __all__  # noqa: F401
