"""The optimiser of every training run: Adam with a constant rate or warm-up + cosine decay."""

from __future__ import annotations

from keras_iusp.utils.errors import ConfigError

#: Learning-rate schedules: ``constant``, or ``cosine`` (linear warm-up then cosine decay to 0).
LR_SCHEDULES = ("constant", "cosine")


def check_schedule(schedule: str, warmup_epochs: int) -> None:
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule {schedule!r}: expected one of {list(LR_SCHEDULES)}")
    if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs={warmup_epochs!r}: expected an integer >= 0")


def make_optimizer(learning_rate: float, schedule: str, *, epochs: int, steps_per_epoch: int,
                   warmup_epochs: int = 1):
    """Adam with a constant rate or warm-up + cosine decay over the whole run.

    Warm-up then cosine decay is the usual recipe for audio taggers (e.g. PANNs, AST); decaying
    to zero also makes the last epochs average out mini-batch noise, which the best-epoch
    checkpoint then keeps.
    """
    import tf_keras as keras

    check_schedule(schedule, warmup_epochs)
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(warmup_epochs * steps_per_epoch, total - 1)
    rate = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10 if warmup else learning_rate,
        decay_steps=total - warmup, warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup)
    return keras.optimizers.Adam(rate)
