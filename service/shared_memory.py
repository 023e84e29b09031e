"""System shared memory, Triton's extension: a client registers a range of a
POSIX shared memory object (`/dev/shm`) under a name, then sends inputs and
receives outputs through it instead of in the messages.

The server never maps a region. It reads and writes through the object's
file descriptor (pread, pwrite) at offsets checked against the registered
range, so nothing outside that range is ever touched. A client can shrink
its object at any time: a mapping would then fault, and SIGBUS kills the
whole server, where pread only comes back short and that request fails.

Registrations belong to the server process (all clients share them, as in
Triton) and end with it. A region unregistered while requests use it
leaves the table at once; its descriptor closes when the last one is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from service.errors import AlreadyExists, InvalidInput, NotFound, ResourceExhausted, SharedMemoryDisabled, shown

# Where Linux keeps POSIX shared memory objects: shm_open("/x") opens /dev/shm/x.
SHM_DIR = Path("/dev/shm")
# Each region holds a file descriptor of the server's process.
MAX_REGIONS = 256
MAX_NAME_CHARS = 256
NAME_MAX = 255  # the longest file name, so the longest key after its '/'

KEY_RULE = ("a POSIX shared memory name is '/' then 1 to 255 printable characters without '/', "
            "other than '.' and '..' (as shm_open takes it, e.g. '/input0')")


@dataclass(frozen=True)
class Placement:
    """Where a request puts a tensor: a registered region, an offset into it, a size."""

    region: str
    offset: int
    byte_size: int


def check_key(key: str) -> str:
    """The file name under /dev/shm of `key`; InvalidInput unless it is a shm_open name."""
    name = key[1:]
    if (not key.startswith("/") or not name or "/" in name or name in (".", "..") or len(name) > NAME_MAX
            or not name.isprintable()):
        raise InvalidInput(f"key '{shown(key)}' is not a POSIX shared memory name: {KEY_RULE}")
    return name


class Region:
    """A registered range of a shared memory object, read and written through its descriptor."""

    def __init__(self, name: str, key: str, offset: int, byte_size: int, fd: int):
        self.name, self.key, self.offset, self.byte_size = name, key, offset, byte_size
        self._fd = fd
        self._users = 0
        self._retired = False
        self._lock = threading.Lock()

    def check(self, placement: Placement, what: str) -> None:
        """InvalidInput unless `placement` lies inside this region."""
        if placement.offset >= self.byte_size:
            raise InvalidInput(f"{what}: shared_memory_offset {placement.offset} is not inside region "
                               f"'{shown(self.name)}' ({self.byte_size} bytes)")
        if placement.offset + placement.byte_size > self.byte_size:
            raise InvalidInput(
                f"{what}: shared_memory_offset {placement.offset} + shared_memory_byte_size {placement.byte_size} "
                f"passes the end of region '{shown(self.name)}' ({self.byte_size} bytes)")

    def read_into(self, offset: int, target: memoryview, what: str) -> None:
        """Fill `target` with the region's bytes from `offset` (checked by check())."""
        start = self.offset + offset
        done = 0
        while done < len(target):
            got = os.preadv(self._fd, [target[done:]], start + done)
            if got == 0:
                raise self._shrunk(start + len(target), what)
            done += got

    def write(self, offset: int, data: memoryview, what: str) -> None:
        """Write `data` into the region at `offset` (checked by check())."""
        start = self.offset + offset
        # pwrite past the end would grow the object again: a client that cut
        # it short gets an error instead of a file the server re-extended.
        if os.fstat(self._fd).st_size < start + len(data):
            raise self._shrunk(start + len(data), what)
        done = 0
        while done < len(data):
            done += os.pwrite(self._fd, data[done:], start + done)

    def _shrunk(self, needed: int, what: str) -> InvalidInput:
        size = os.fstat(self._fd).st_size
        return InvalidInput(f"{what}: shared memory object '{shown(self.key)}' of region '{shown(self.name)}' now "
                            f"holds {size} bytes, fewer than the {needed} the request needs: it was truncated "
                            "after it was registered")

    # --- lifetime: the descriptor lives while the region is registered or in use

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._retired and self._users == 0
        if last:
            os.close(self._fd)

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            idle = self._users == 0
        if idle:
            os.close(self._fd)


class SharedMemory:
    """The regions registered with one server, by name."""

    def __init__(self, enabled: bool = True, directory: Path = SHM_DIR):
        self.enabled = enabled
        self.directory = directory
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise SharedMemoryDisabled(
                "system shared memory is off on this server: start it with --allow-client-shm true "
                "to register regions and name them in requests")

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        self._check_enabled()
        if not name:
            raise InvalidInput("a shared memory region needs a name")
        if len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"region name '{shown(name)}' is longer than {MAX_NAME_CHARS} characters")
        file_name = check_key(key)
        if byte_size == 0:
            raise InvalidInput(f"region '{shown(name)}': byte_size is 0; a region holds at least one byte")
        with self._lock:
            if name in self._regions:
                raise AlreadyExists(f"shared memory region '{shown(name)}' is already registered "
                                    f"(key '{shown(self._regions[name].key)}'); unregister it first or "
                                    "choose another name")
            if len(self._regions) >= MAX_REGIONS:
                raise ResourceExhausted(f"{MAX_REGIONS} shared memory regions are registered, the most this "
                                        "server holds; unregister some first")
            fd = self._open(key, file_name)
            try:
                size = os.fstat(fd).st_size
                if offset + byte_size > size:
                    raise InvalidInput(
                        f"region '{shown(name)}' (offset {offset}, {byte_size} bytes) passes the end of shared "
                        f"memory object '{shown(key)}', which holds {size} bytes")
            except BaseException:
                os.close(fd)
                raise
            self._regions[name] = Region(name, key, offset, byte_size, fd)

    def _open(self, key: str, file_name: str) -> int:
        path = self.directory / file_name
        try:
            # O_NOFOLLOW: a symbolic link in /dev/shm could point at any file
            # the server may write; shm_open refuses them the same way.
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFound(f"no shared memory object '{shown(key)}' exists ({shown(path)}): the client creates "
                           "it (shm_open, or tritonclient.utils.shared_memory.create_shared_memory_region) "
                           "before registering it") from None
        except OSError as e:
            reason = "it is a symbolic link" if e.errno == errno.ELOOP else (e.strerror or "error").lower()
            raise InvalidInput(f"cannot open shared memory object '{shown(key)}': {reason}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidInput(f"'{shown(key)}' is not a shared memory object (not a regular file in "
                               f"{self.directory})")
        return fd

    def unregister(self, name: str) -> None:
        """Forget region `name`, or every region when `name` is empty. An
        unknown name is no error (as in Triton)."""
        self._check_enabled()
        with self._lock:
            if name:
                gone = [self._regions.pop(name)] if name in self._regions else []
            else:
                gone, self._regions = list(self._regions.values()), {}
        for region in gone:
            region.retire()

    def status(self, name: str = "") -> list[Region]:
        self._check_enabled()
        with self._lock:
            if not name:
                return sorted(self._regions.values(), key=lambda r: r.name)
            if name not in self._regions:
                raise NotFound(f"no system shared memory region named '{shown(name)}' is registered")
            return [self._regions[name]]

    @contextlib.contextmanager
    def hold(self, names: Iterable[str]) -> Iterator[dict[str, Region]]:
        """The regions of `names`, kept open until the block ends even if
        they are unregistered meanwhile; NotFound for a name not registered."""
        wanted = set(names)
        if not wanted:
            yield {}
            return
        self._check_enabled()
        held: dict[str, Region] = {}
        try:
            with self._lock:
                for name in wanted:
                    region = self._regions.get(name)
                    if region is None:
                        raise NotFound(f"shared memory region '{shown(name)}' is not registered; register it "
                                       "with SystemSharedMemoryRegister first")
                    region.acquire()
                    held[name] = region
            yield held
        finally:
            for region in held.values():
                region.release()

    def close(self) -> None:
        """Unregister everything: the server is stopping."""
        with self._lock:
            gone, self._regions = list(self._regions.values()), {}
        for region in gone:
            region.retire()
