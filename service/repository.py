"""The model repository: which models exist on disk, which versions are
loaded, their states, and the in-flight accounting that lets a model be
released only after the calls using it have finished.

Layout (written by `netspec compile --repository DIR`):

    DIR/NAME/config.pbtxt
    DIR/NAME/K/spec.yaml, weights.safetensors   (K: a version number)

A version is loaded by recompiling its spec.yaml and reading its safetensors
weights (compiler.tools.artifact.load_version); nothing from the artifact is
executed or unpickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compiler.protocol.generated import model_config_pb2
from service.batching import Scheduler
from service.config import ModelSettings, read_config, served_versions, settings_of
from service.errors import ConfigError, NotFound, Unavailable
from service.runtime import Runtime
from service.stats import ModelStats

log = logging.getLogger("netspec.serve")


class State(str, enum.Enum):
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


def default_loader(version_dir: Path):
    from compiler.tools.artifact import load_version

    return load_version(version_dir)


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
        self.runtime.module = None  # the weights go with the last reference
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

    def latest(self) -> ServedVersion:
        return self.versions[max(self.versions, key=int)]


class Repository:
    def __init__(
        self,
        root: Path,
        *,
        device: torch.device,
        loader: Callable[[Path], object] = default_loader,
    ):
        self.root = Path(root)
        self.device = device
        self.loader = loader
        self.entries: dict[str, ModelEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

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

    # --- lookup -----------------------------------------------------------

    def _model_dir(self, name: str) -> Path | None:
        """The directory of model `name`, or None. A name is one plain path
        component: it never reaches outside the repository."""
        if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.root / name
        return path if path.is_dir() else None

    def entry(self, name: str) -> ModelEntry:
        entry = self.entries.get(name)
        if entry is None:
            if self._model_dir(name) is not None:
                raise Unavailable(f"model '{name}' is not loaded")
            raise NotFound(f"model '{name}' is not in the repository")
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
                f"model '{name}' has no version '{version}' (served versions: {', '.join(sorted(entry.versions, key=int))})"
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
            raise NotFound(f"model '{name}' is not in the repository {self.root}")
        async with self._lock(name):
            old = self.entries.get(name)
            reloading = old is not None and old.state is State.READY
            entry = ModelEntry(name, State.LOADING, stats=old.stats if old else {})
            if not reloading:  # a reload keeps the old versions serving until the swap
                self.entries[name] = entry
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._load_blocking, entry)
            except Exception as exc:  # noqa: BLE001 - any failure makes the model UNAVAILABLE
                reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                await _release_all(entry)
                if reloading:
                    raise Unavailable(f"reload of model '{name}' failed, previous versions keep serving: {reason}") from exc
                entry.state, entry.reason = State.UNAVAILABLE, reason
                log.error("model '%s' failed to load: %s", name, reason)
                raise Unavailable(f"model '{name}' failed to load: {reason}") from exc
            for served in entry.versions.values():
                served.scheduler.start()
            entry.state = State.READY
            self.entries[name] = entry
            log.info("model '%s' ready, versions %s", name, ", ".join(sorted(entry.versions, key=int)))
            if reloading:
                await _release_all(old)

    def _load_blocking(self, entry: ModelEntry) -> None:
        model_dir = self.root / entry.name
        config_path = model_dir / "config.pbtxt"
        if not config_path.exists():
            raise ConfigError(f"{config_path} is missing")
        entry.config = read_config(config_path)
        if entry.config.name and entry.config.name != entry.name:
            raise ConfigError(f"{config_path} names model '{entry.config.name}' but its directory is '{entry.name}'")
        entry.config.name = entry.name
        entry.settings = settings = settings_of(entry.config)
        numbered = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        versions = served_versions(entry.config, numbered)
        if not versions:
            raise ConfigError(f"{model_dir} has no version directory to serve (expected e.g. {model_dir}/1)")
        for v in versions:
            model = self.loader(model_dir / str(v))
            runtime = Runtime(model, device=self.device, precision=settings.precision, max_batch_size=settings.max_batch_size)
            _check_against_config(runtime, entry.config, model_dir / str(v))
            stats = entry.stats.setdefault(str(v), ModelStats())
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netspec-{entry.name}-{v}")
            scheduler = Scheduler(
                runtime,
                executor,
                dynamic_batching=settings.dynamic_batching,
                max_queue_delay_s=settings.max_queue_delay_s,
                on_execution=stats.record_execution,
            )
            entry.versions[str(v)] = ServedVersion(entry.name, str(v), runtime, scheduler, executor, stats)

    async def unload(self, name: str) -> None:
        """Stop serving `name`; calls already running finish first."""
        async with self._lock(name):
            entry = self.entry(name)
            entry.state, entry.reason = State.UNLOADING, "unloading"
            await _release_all(entry)
            entry.versions = {}
            entry.state, entry.reason = State.UNAVAILABLE, "unloaded"
            log.info("model '%s' unloaded", name)

    async def load_all(self, names: list[str] | None = None) -> dict[str, str]:
        """Load `names` (default: every model on disk); return {name: reason} of failures."""
        failures = {}
        for name in names if names is not None else self.available():
            try:
                await self.load(name)
            except (NotFound, Unavailable) as exc:
                failures[name] = str(exc)
        return failures

    async def close(self) -> None:
        """Release every model, each after its in-flight calls."""
        for entry in list(self.entries.values()):
            await _release_all(entry)
            entry.versions = {}
            entry.state, entry.reason = State.UNAVAILABLE, "server shut down"


async def _release_all(entry: ModelEntry) -> None:
    for served in list(entry.versions.values()):
        await served.release()


def _check_against_config(runtime: Runtime, config, where: Path) -> None:
    """The config's tensor names must be the model's, in order (when the config lists them)."""
    for kind, declared, actual in (
        ("input", [i.name for i in config.input], [s.name for s in runtime.inputs]),
        ("output", [o.name for o in config.output], [s.name for s in runtime.outputs]),
    ):
        if declared and declared != actual:
            raise ConfigError(f"{where}: config.pbtxt lists {kind}s {declared}, but the model has {actual}")
