"""Defaults shared by the CLI, the library and the configs, in a module that imports nothing.

The CLI reads them while building its parser, before its quiet start-up filter is in place, so
this module must not import TensorFlow (nor anything that does).
"""

#: The teacher that ``train-teacher``, ``train_teacher()``, the quickstart and experiment configs
#: use unless told otherwise: ``teacher_cnn``'s network with mean + max clip pooling, which scored
#: 0.979 validation micro-AUPRC at the paper's scale against 0.936 for mean pooling (0.99 against
#: 0.47 on isolated transients; ``benchmarks/results/teacher_pooling_probe.json``), and 0.836
#: against 0.820 on the quickstart's data.
DEFAULT_TEACHER = "teacher_cnn_meanmax"
