"""Training: a run's settings and a method's losses (:mod:`.recipe`), the optimiser
(:mod:`.optimizer`), the training datasets (:mod:`.datasets`), teacher training and student
distillation (:mod:`.training`), run directories (:mod:`.saved_runs`; the finished-run marker in
:mod:`.run_folder`), resumable fits (:mod:`.resume`) and the shared defaults (:mod:`.defaults`,
which imports nothing so the CLI can read it before TensorFlow loads).
"""
