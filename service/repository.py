"""The model repository: which models exist on disk, which versions are
loaded, their states, and the in-flight accounting that lets a model be
released only after the calls using it have finished.

Layout (written by `netspec compile --repository DIR`):

    DIR/NAME/config.pbtxt
    DIR/NAME/K/spec.yaml, weights.safetensors   (K: a version number)

A version is loaded by recompiling its spec.yaml and reading its safetensors
weights (compiler.tools.artifact.load_version); nothing from the artifact is
executed or unpickled.

The repository's contents are not trusted: nothing that resolves outside it
(a symlinked model or version folder, a spec.yaml linked to /etc/passwd) is
read, and the reasons clients see name paths relative to it and never quote
a file. Expected failures (a bad spec, config or weights, a load past its
time limit) get a reason; anything else is a bug, logged with its traceback
and reported as an internal failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compiler.api import ResourceError, SpecError
from compiler.protocol.generated import model_config_pb2
from compiler.tools.artifact import CONFIG_FILE, SPEC_FILE, WEIGHTS_FILE
from service.batching import Scheduler
from service.config import ModelSettings, read_config, served_versions, settings_of
from service.errors import ConfigError, NotFound, Unavailable, shown
from service.loading import LoadRunner, LoadTimeout
from service.options import ServeOptions
from service.runtime import Runtime
from service.stats import ModelStats

log = logging.getLogger("netspec.serve")


class State(str, enum.Enum):
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


def default_loader(version_dir: Path, precision: str = "fp32"):
    from compiler.tools.artifact import load_version

    return load_version(version_dir, precision)


INTERNAL_LOAD_FAILURE = "internal error while loading the model; the server log has the details"


@dataclass
class ServedVersion:
    """One loaded version of a model."""

    model: str
    version: str
    runtime: Runtime
    scheduler: Scheduler
    executor: ThreadPoolExecutor
    stats: ModelStats
    in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self):
        self._idle.set()

    async def release(self) -> None:
        """Wait for the calls using this version, then free it."""
        await self._idle.wait()
        await self.scheduler.close()
        self.executor.shutdown(wait=True)
        self.runtime.release()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class ModelEntry:
    name: str
    state: State = State.UNAVAILABLE
    reason: str = ""
    config: model_config_pb2.ModelConfig | None = None
    settings: ModelSettings | None = None
    versions: dict[str, ServedVersion] = field(default_factory=dict)
    # Statistics outlive an unload/load cycle of the same version, like Triton's.
    stats: dict[str, ModelStats] = field(default_factory=dict)
    abandoned: bool = False  # its load passed the time limit: whatever it still makes is dropped

    def latest(self) -> ServedVersion:
        return self.versions[max(self.versions, key=int)]


class Repository:
    def __init__(
        self,
        root: Path,
        *,
        device: torch.device,
        loader: Callable[[Path, str], object] = default_loader,
        load_timeout_s: float = ServeOptions.model_load_timeout_s,
        load_threads: int = ServeOptions.model_load_threads,
        on_change: Callable[[], Awaitable[None]] | None = None,
        learn_threads: bool = False,
    ):
        """`learn_threads`: let each model on the CPU learn the threads per
        operation of requests run alone (service/threads.py); otherwise
        models run on the threads torch has."""
        self.root = Path(root)
        self._real_root = self.root.resolve()
        self.device = device
        self.learn_threads = learn_threads
        self.loader = loader
        self.entries: dict[str, ModelEntry] = {}
        self.wanted: set[str] = set()  # models asked for (at start or by a load) and not unloaded since
        self.on_change = on_change  # awaited after a model's state settles: readiness follows it
        self._locks: dict[str, asyncio.Lock] = {}
        self._runner = LoadRunner(load_timeout_s, load_threads)

    # --- discovery --------------------------------------------------------

    def available(self) -> list[str]:
        """Names of the model directories in the repository, sorted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def index(self) -> list[tuple[str, str, str, str]]:
        """(name, version, state, reason) for every model on disk or known."""
        rows = []
        for name in sorted(set(self.available()) | set(self.entries)):
            entry = self.entries.get(name)
            if entry is None:
                rows.append((name, "", State.UNAVAILABLE.value, "not loaded"))
            elif entry.versions and entry.state is State.READY:
                rows.extend((name, v, entry.state.value, "") for v in sorted(entry.versions, key=int))
            else:
                rows.append((name, "", entry.state.value, entry.reason))
        return rows

    def all_wanted_ready(self) -> bool:
        return all(name in self.entries and self.entries[name].state is State.READY for name in self.wanted)

    # --- lookup -----------------------------------------------------------

    def _model_dir(self, name: str) -> Path | None:
        """The directory of model `name`, or None. A name is one plain path
        component that a file system can hold: it never reaches outside the
        repository by itself (symlinks are refused when loading)."""
        if (not name or len(name.encode("utf-8", "surrogatepass")) > 255 or name.startswith(".")
                or any(c in name for c in "/\\\0")):
            return None
        path = self.root / name
        try:
            return path if path.is_dir() else None
        except OSError:
            return None

    def entry(self, name: str) -> ModelEntry:
        entry = self.entries.get(name)
        if entry is None:
            if self._model_dir(name) is not None:
                raise Unavailable(f"model '{name}' is not loaded")
            raise NotFound(f"model '{shown(name)}' is not in the repository")
        return entry

    def get(self, name: str, version: str = "") -> ServedVersion:
        """The ready version `version` of `name` (the newest when empty)."""
        entry = self.entry(name)
        if entry.state is not State.READY:
            reason = f": {entry.reason}" if entry.reason else ""
            raise Unavailable(f"model '{name}' is {entry.state.value}{reason}")
        if not version:
            return entry.latest()
        served = entry.versions.get(version)
        if served is None:
            raise NotFound(
                f"model '{name}' has no version '{shown(version)}' "
                f"(served versions: {', '.join(sorted(entry.versions, key=int))})"
            )
        return served

    @contextlib.contextmanager
    def use(self, name: str, version: str = ""):
        """The ready version for the length of a call; unload waits for it."""
        served = self.get(name, version)
        served.in_flight += 1
        served._idle.clear()
        try:
            yield served
        finally:
            served.in_flight -= 1
            if served.in_flight == 0:
                served._idle.set()

    def in_flight(self) -> int:
        """Calls using a model right now."""
        return sum(v.in_flight for e in self.entries.values() for v in e.versions.values())

    # --- load / unload ----------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load(self, name: str) -> None:
        """Load (or reload) `name`. On failure the model is UNAVAILABLE with the
        reason, and Unavailable is raised; other models are untouched."""
        if self._model_dir(name) is None:
            raise NotFound(f"model '{shown(name)}' is not in the repository")
        self.wanted.add(name)
        try:
            async with self._lock(name):
                await self._load_locked(name)
        finally:
            await self._changed()

    async def _load_locked(self, name: str) -> None:
        old = self.entries.get(name)
        reloading = old is not None and old.state is State.READY
        entry = ModelEntry(name, State.LOADING, stats=old.stats if old else {})
        if not reloading:  # a reload keeps the old versions serving until the swap
            self.entries[name] = entry
        try:
            await self._runner.run(name, self._memory_need(name), lambda: self._load_blocking(entry),
                                   lambda: _abandon(entry))
        except asyncio.CancelledError:
            entry.state, entry.reason = State.UNAVAILABLE, "the server shut down while the model loaded"
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into expected failures and bugs below
            reason = self._failure_reason(name, exc)
            await _release_all(entry)
            if reloading:
                raise Unavailable(f"reload of model '{name}' failed, previous versions keep serving: {reason}") from exc
            entry.state, entry.reason = State.UNAVAILABLE, reason
            raise Unavailable(f"model '{name}' failed to load: {reason}") from exc
        for served in entry.versions.values():
            served.scheduler.start()
        entry.state = State.READY
        self.entries[name] = entry
        log.info("model '%s' ready, versions %s", name, ", ".join(sorted(entry.versions, key=int)))
        if reloading:
            await _release_all(old)

    def _failure_reason(self, name: str, exc: Exception) -> str:
        """What clients are told about a failed load, logged for the operator
        in full. Expected failures name the problem and where it is, relative
        to the repository; a bug is logged with its traceback and told as an
        internal failure."""
        if isinstance(exc, SpecError):
            reason = self._spec_reason(exc)
        elif isinstance(exc, ResourceError):  # weights missing, unreadable or not the spec's
            reason = self._relative(exc.message)
        elif isinstance(exc, (ConfigError, LoadTimeout)):
            reason = self._relative(str(exc))
        elif isinstance(exc, OSError):
            where = f" {self._relative(exc.filename)}" if exc.filename else ""
            reason = f"cannot read{where}: {exc.strerror or 'input/output error'}"
        elif isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
            reason = "not enough memory to load the model"
        else:
            log.error("model '%s' failed to load because of a bug", name, exc_info=exc)
            return INTERNAL_LOAD_FAILURE
        detail = getattr(exc, "detail", None) or str(exc)
        log.error("model '%s' failed to load: %s", name, detail)
        return reason

    def _spec_reason(self, exc: SpecError) -> str:
        first = exc.diagnostics[0]
        if first.loc is None:  # weights and missing files: the compiler's message names no content
            return self._relative(first.message)
        # A spec error quotes the spec's text: a client is told where, the log says what.
        n = len(exc.diagnostics)
        return (f"{self._relative(first.loc.file)}:{first.loc.line}:{first.loc.col}: not a valid spec"
                f"{f' ({n} errors)' if n > 1 else ''}; the server log has the details")

    def _relative(self, text: str) -> str:
        """`text` with the repository's own path taken out of the paths it holds."""
        for root in {str(self._real_root), str(self.root), os.path.abspath(self.root)}:
            text = str(text).replace(root + os.sep, "")
        return text

    def _inside(self, path: Path, what: str) -> None:
        """Refuse `path` if it resolves (through symlinks) outside the repository.
        A path that does not exist is left to the reader to report."""
        if not os.path.lexists(path):
            return
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link or a loop
            real = None
        if real is None or (real != self._real_root and self._real_root not in real.parents):
            raise ConfigError(f"{self._relative(str(path))}: the {what} resolves outside the repository; refused")

    def _memory_need(self, name: str) -> int:
        """Memory a load is expected to take: its weights, read and then
        copied into the module, twice their size on disk."""
        total = 0
        with contextlib.suppress(OSError):
            for version in (self.root / name).iterdir():
                with contextlib.suppress(OSError):
                    total += (version / WEIGHTS_FILE).stat().st_size
        return 2 * total

    def _load_blocking(self, entry: ModelEntry) -> None:
        model_dir = self.root / entry.name
        self._inside(model_dir, "model folder")
        config_path = model_dir / CONFIG_FILE
        if not config_path.exists():
            raise ConfigError(f"{self._relative(str(config_path))} is missing")
        self._inside(config_path, CONFIG_FILE)
        entry.config = read_config(config_path)
        if entry.config.name and entry.config.name != entry.name:
            raise ConfigError(f"{self._relative(str(config_path))} names model '{shown(entry.config.name)}' "
                              f"but its directory is '{entry.name}'")
        entry.config.name = entry.name
        entry.settings = settings = settings_of(entry.config)
        numbered = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        versions = served_versions(entry.config, numbered)
        if not versions:
            raise ConfigError(f"{entry.name} has no version directory to serve (expected e.g. {entry.name}/1)")
        for v in versions:
            version_dir = model_dir / str(v)
            self._inside(version_dir, "version folder")
            for file in (SPEC_FILE, WEIGHTS_FILE):
                self._inside(version_dir / file, file)
            model = self.loader(version_dir, settings.precision)
            runtime = Runtime(model, device=self.device, precision=settings.precision,
                              max_batch_size=settings.max_batch_size, fast=settings.fast, name=entry.name)
            _check_against_config(runtime, entry.config, f"{entry.name}/{v}")
            stats = entry.stats.setdefault(str(v), ModelStats())
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netspec-{entry.name}-{v}")
            scheduler = Scheduler(
                runtime,
                executor,
                dynamic_batching=settings.dynamic_batching,
                max_queue_delay_s=settings.max_queue_delay_s,
                on_execution=stats.record_execution,
                learn_threads=self.learn_threads and self.device.type == "cpu",
            )
            entry.versions[str(v)] = ServedVersion(entry.name, str(v), runtime, scheduler, executor, stats)

    async def unload(self, name: str) -> None:
        """Stop serving `name`; calls already running finish first."""
        try:
            async with self._lock(name):
                entry = self.entry(name)
                self.wanted.discard(name)
                entry.state, entry.reason = State.UNLOADING, "unloading"
                await _release_all(entry)
                entry.versions = {}
                entry.state, entry.reason = State.UNAVAILABLE, "unloaded"
                log.info("model '%s' unloaded", name)
        finally:
            await self._changed()

    async def load_all(self, names: list[str] | None = None) -> dict[str, str]:
        """Load `names` (default: every model on disk), as many at once as the
        load threads and free memory allow; return {name: reason} of failures."""
        names = names if names is not None else self.available()
        self.wanted.update(n for n in names if self._model_dir(n) is not None)
        failures = {}

        async def one(name: str) -> None:
            try:
                await self.load(name)
            except NotFound as exc:  # asked for by name, not on disk
                log.error("%s", exc)
                failures[name] = str(exc)
            except Unavailable as exc:  # its load failed and was logged with its details
                failures[name] = str(exc)

        await asyncio.gather(*(one(name) for name in names))
        return failures

    async def close(self) -> None:
        """Release every model, each after its in-flight calls."""
        for entry in list(self.entries.values()):
            await _release_all(entry)
            entry.versions = {}
            entry.state, entry.reason = State.UNAVAILABLE, "server shut down"

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()


def _abandon(entry: ModelEntry) -> None:
    """Drop what a load that passed its time limit made (from any thread)."""
    entry.abandoned = True
    for served in list(entry.versions.values()):
        served.runtime.release()
    entry.versions = {}


async def _release_all(entry: ModelEntry) -> None:
    for served in list(entry.versions.values()):
        await served.release()


def _check_against_config(runtime: Runtime, config, where: str) -> None:
    """The config's tensor names must be the model's, in order (when the config lists them)."""
    for kind, declared, actual in (
        ("input", [i.name for i in config.input], [s.name for s in runtime.inputs]),
        ("output", [o.name for o in config.output], [s.name for s in runtime.outputs]),
    ):
        if declared and declared != actual:
            raise ConfigError(f"{where}: config.pbtxt lists {kind}s {declared}, but the model has {actual}")
