"""Training: teacher training and student distillation (:mod:`.training`), the run-folder format
(:mod:`.run_folder`), resumable fits (:mod:`.resume`) and the shared defaults (:mod:`.defaults`,
which imports nothing so the CLI can read it before TensorFlow loads).
"""
