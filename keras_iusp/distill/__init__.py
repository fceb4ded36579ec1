"""Distillation: the losses (:mod:`.losses`), the loss objects (:mod:`.distillation`), the
:class:`~.distiller.Distiller`, batch augmentation, the method registry (:mod:`.methods`), the
teacher-target cache (:mod:`.teacher_targets`) and the Keras 3 adapter.
"""
