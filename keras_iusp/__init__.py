"""keras-iusp: intra-utterance similarity preserving knowledge distillation for tiny sound-event
detectors, from training to int8 TensorFlow Lite Micro firmware assets."""

__version__ = "0.1.0"
