"""One Optuna study per method shared by several ``keras-iusp tune`` processes (``--storage``).

Optuna's RDB storage (PostgreSQL, MySQL) already lets processes on several machines add trials
to one study. Three things make their shared search the search one process would run:

- **A lock per study** (:class:`StudyLock`): a process takes it to queue the first trials, count
  the budget and create its next trial, so the budget is never overrun and no queued trial is
  queued twice. It is the database's own advisory lock (PostgreSQL ``pg_advisory_lock``, MySQL
  ``GET_LOCK``; an ``flock`` beside an SQLite file), held on a connection of its own: the server
  drops it when the holder's connection ends, however the process ended.
- **Heartbeats** (Optuna's): a trial whose process stopped beating is failed and queued again
  with the same parameters (:class:`optuna.storages.RetryFailedTrialCallback`), so a killed
  process's trial is finished by another, not lost and not run twice at the same time.
- **Startup draws by trial number** (:class:`TrialSeededSampler`): the random first trials of TPE
  are drawn from a generator seeded by the sampler seed and the trial's number, not from one
  generator per process (two processes with one seed would draw the same parameters).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna

from keras_iusp.utils.errors import ConfigError

#: Seconds between a running trial's heartbeats, and without one before it counts as dead.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60


def _shown(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even parseable: show nothing of it
        return "<unparseable URL>"


def _dialect(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name()


def open_storage(url: str):
    """The Optuna RDB storage at ``url``, with heartbeats and retries of dead trials.

    Raises :class:`ConfigError` naming ``--storage`` when the URL cannot be parsed, names a
    database other than PostgreSQL, MySQL or SQLite, lacks its driver, or cannot be reached.
    """
    try:
        dialect = _dialect(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.ArgumentError and kin
        raise ConfigError(f"--storage {_shown(url)}: not a database URL ({exc}); expected e.g. "
                          "postgresql://USER@HOST/DATABASE") from None
    if dialect not in ("postgresql", "mysql", "sqlite"):
        raise ConfigError(f"--storage {_shown(url)}: a {dialect!r} database; expected a "
                          "postgresql://, mysql:// or sqlite:/// URL")
    # Optuna >= 4.9 names the retry of a dead process's trial apart from other failures.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    try:
        # Two processes creating Optuna's tables in one empty database at once collide.
        with StudyLock(url, "tables").held(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = {"heartbeat_stale_trial_callback": retry(max_retry=None)} if retry else \
                {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=None)}
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL,
                                              grace_period=GRACE_PERIOD, **callback)
    except Exception as exc:  # noqa: BLE001 - driver missing, server down, bad credentials
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--storage {_shown(url)}: cannot open the database ({reason})") \
            from None


def fail_dead_trials(study) -> None:
    """Fail the trials of ``study`` whose process stopped beating (each is queued again)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class StudyLock:
    """An exclusive lock on one study, shared by every process that opens the same storage.

    ``acquire()`` waits for it; ``release()`` is idempotent, so a holder can hand it back early
    (a trial releases it once it is created) and still release it in a ``finally``.
    """

    def __init__(self, url: str, study_name: str):
        self._name = f"keras-iusp tune {study_name}"
        self._dialect = _dialect(url)
        self._url = url
        self._connection = None
        self._file = None

    def _key(self) -> int:
        return int.from_bytes(hashlib.sha256(self._name.encode()).digest()[:8], "big",
                              signed=True)

    def acquire(self) -> None:
        if self._connection is not None or self._file is not None:
            raise RuntimeError("StudyLock is not re-entrant")
        if self._dialect == "sqlite":
            import fcntl

            from sqlalchemy.engine import make_url

            database = make_url(self._url).database or ""
            path = Path(f"{database}.lock") if database and database != ":memory:" else None
            if path is None:
                return  # an in-memory database lives in this process alone
            self._file = open(path, "a")  # noqa: SIM115 - held until release()
            fcntl.flock(self._file, fcntl.LOCK_EX)
            return
        import sqlalchemy

        engine = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool)
        connection = engine.connect()
        try:
            if self._dialect == "postgresql":
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"),
                                   {"k": self._key()})
            else:  # mysql: lock names are at most 64 characters
                name = hashlib.sha256(self._name.encode()).hexdigest()[:60]
                connection.execute(sqlalchemy.text("SELECT GET_LOCK(:n, -1)"), {"n": name})
            connection.commit()
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()  # the server drops a session's advisory locks with it

    @contextlib.contextmanager
    def held(self) -> Iterator[StudyLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose first ``n_startup_trials`` trials draw at random from ``(seed, trial number)``.

    A trial numbered below ``n_startup_trials`` gets the same parameters whichever process runs
    it and whenever it runs; later trials are TPE's, on the trials finished when they start
    (``constant_liar``: running trials count as bad, so concurrent trials spread out).
    Parameters fixed by a queued trial are not drawn.
    """

    def __init__(self, seed: int, n_startup_trials: int) -> None:
        self._seed = seed
        self._n_startup = n_startup_trials
        self._tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                               constant_liar=True)
        self._random: dict[int, optuna.samplers.RandomSampler] = {}

    def _startup(self, number: int) -> optuna.samplers.RandomSampler:
        """The generator of trial ``number``, kept while that trial draws its parameters."""
        if number not in self._random:
            digest = hashlib.sha256(f"{self._seed}:{number}".encode()).digest()
            self._random = {number: optuna.samplers.RandomSampler(
                seed=int.from_bytes(digest[:4], "big"))}
        return self._random[number]

    def infer_relative_search_space(self, study, trial):
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        if trial.number < self._n_startup:
            return {}
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if trial.number < self._n_startup:
            return self._startup(trial.number).sample_independent(
                study, trial, param_name, param_distribution)
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
