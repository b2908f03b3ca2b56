"""One writer per output folder: ``OutputLock(out)`` is held while a command writes there.

The lock is ``<out>/.lock``: an ``flock`` on that file, which the kernel drops when its
holder dies however it dies (SIGKILL included), and, inside the file, who holds it (pid,
host, command, since when) so that anyone who finds it taken can name the holder.

- A second process waits for the lock with one line saying whom it waits for, or with
  ``wait=False`` stops at once with a ``BenchError`` naming the holder.
- A lock left by a holder on this host that died is taken over (the ``flock`` is free, so
  nobody holds it), and the takeover is said.  One recorded by another host is reported
  and left alone: a network filesystem may not share ``flock`` between hosts, so from
  here that holder cannot be told alive or dead.
- Released on every way out: the file is removed (while the ``flock`` is still held, so a
  waiter never takes a lock that is being removed) and the ``flock`` dropped.  SIGTERM while
  the lock is held ends the command through ``SystemExit`` (status 143), so that holds too.

``report``, ``verify`` and ``predict`` only read stored runs and take no lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import BenchError

LOCK_FILE = ".lock"
POLL_SECONDS = 0.5  # a waiting process tries again this often
EXIT_TERMINATED = 128 + signal.SIGTERM
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # a filesystem without flock


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock, as written in the lock file."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}), since {self.since}"

    @classmethod
    def me(cls, command: str) -> Holder:
        return cls(os.getpid(), socket.gethostname(), command,
                   datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"))


class OutputLock:
    """``with OutputLock(out, command=...):`` - hold ``out``'s lock for the block."""

    def __init__(self, out: Path, *, command: str, wait: bool = True,
                 on_note: Callable[[str], None] | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.command = command
        self.wait = wait
        self.on_note = on_note or (lambda line: None)
        self.poll_seconds = poll_seconds
        self._fd: int | None = None
        self._previous_sigterm = None

    def __enter__(self) -> OutputLock:
        self._catch_sigterm()
        try:
            self.acquire()
        except BaseException:
            self._restore_sigterm()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self.release()
        finally:
            self._restore_sigterm()
        return False

    # -- acquiring -----------------------------------------------------------------------
    def acquire(self) -> None:
        announced = False
        while True:
            fd = self._open()
            held = _try_flock(fd)
            holder = _read_holder(fd)
            if held is None:  # no flock on this filesystem: the recorded holder decides
                held = holder is None or (holder.host == socket.gethostname() and not _alive(holder.pid))
            if held and not self._still_there(fd):
                os.close(fd)  # we locked a file its holder removed as it let go: try the new one
                continue
            if held and holder is not None and holder.host != socket.gethostname():
                os.close(fd)
                raise BenchError(
                    f"{self.out} is locked by {holder.describe()}, another machine; this one cannot tell "
                    f"whether it still runs: if it does not, remove {self.path} and run again")
            if held:
                if holder is not None:
                    self.on_note(f"taking over the lock on {self.out} left by {holder.describe()}: "
                                 "that process is no longer running")
                self._claim(fd)
                return
            os.close(fd)
            who = holder.describe() if holder is not None else "another process"
            if not self.wait:
                raise BenchError(f"{self.out} is in use by {who}; wait for it to finish, or run again "
                                 "without --no-wait to wait for it")
            if not announced:
                self.on_note(f"waiting for {self.out}: it is in use by {who} (Ctrl-C to stop; "
                             "--no-wait stops at once instead)")
                announced = True
            time.sleep(self.poll_seconds)

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_umask())
        except OSError as exc:
            raise BenchError(f"cannot lock {self.out}: {exc.strerror or exc}") from None

    def _still_there(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _claim(self, fd: int) -> None:
        data = (json.dumps(asdict(Holder.me(self.command))) + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise BenchError(f"cannot lock {self.out}: {exc.strerror or exc}") from None
        self._fd = fd

    # -- releasing -----------------------------------------------------------------------
    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._still_there(fd):
                os.unlink(self.path)  # before the flock goes: a waiter then finds no file to lock
        except OSError:
            pass  # the flock below is what excludes other writers
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    # -- SIGTERM -------------------------------------------------------------------------
    def _catch_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _exit_on_sigterm(signum, _frame):
    # Unwinds through ``with OutputLock``, which releases the lock on the way out.
    raise SystemExit(EXIT_TERMINATED)


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: this filesystem has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _NO_FLOCK:
            return None
        raise
    return True


def read_holder(out: Path) -> Holder | None:
    """Who holds (or last held) ``out``'s lock, or None when there is no readable lock file."""
    try:
        fd = os.open(Path(out) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 1 << 16, 0).decode())
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None  # empty (being written, or never was) or not ours


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
