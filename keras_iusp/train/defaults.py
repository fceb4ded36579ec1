"""Defaults shared by the CLI, the library and the configs, in a module that imports nothing.

The CLI reads them while building its parser, before its quiet start-up filter is in place, so
this module must not import TensorFlow (nor anything that does).
"""

#: The teacher that ``train-teacher``, ``train_teacher()``, the quickstart and experiment configs
#: use unless told otherwise: ``teacher_cnn``'s network with mean + max clip pooling (why:
#: ``docs/api.md``, Why these defaults).
DEFAULT_TEACHER = "teacher_cnn_meanmax"
