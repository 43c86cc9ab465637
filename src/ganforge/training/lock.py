"""One writer per run folder: `ganforge train` and `ganforge resume` hold RUN/.lock for their whole session.

The lock is an flock() on RUN/.lock, which the kernel drops when its holder exits however it exits, so a
lock file left by a killed run is recognised as stale by simply being lockable. The file's JSON (pid, host,
start time) only names the holder in messages. A file naming another host is not taken over: flock may not
reach across hosts (some NFS mounts keep locks local), so that holder cannot be checked from here.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path

from ..errors import GanforgeError

try:
    import fcntl
except ImportError:          # not POSIX: run without a lock (see hold)
    fcntl = None

NAME = ".lock"


def _holder(raw: bytes) -> dict:
    try:
        info = json.loads(raw.decode("utf-8"))
    except ValueError:       # empty (being written) or not ours
        return {}
    return info if isinstance(info, dict) else {}


def _who(info: dict) -> str:
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (started {info.get('started', '?')})"
            if info else "another process")


def _acquire(run_dir: Path) -> int | None:
    path = run_dir / NAME
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(path.read_bytes()) if path.exists() else {}
            os.close(fd)
            raise GanforgeError(f"run folder {str(run_dir)!r} is in use by {_who(info)}; wait for that run to "
                                f"finish or stop it (kill {info.get('pid', 'PID')}), or train into another --out"
                                ) from None
        except OSError as e:     # a file system without locks: say so, and go on unlocked
            os.close(fd)
            print(f"ganforge: warning: cannot lock {path} ({e.strerror}); make sure no other ganforge process "
                  f"writes to {run_dir}", file=sys.stderr)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:             # its holder released and removed it between our open and flock: again
            os.close(fd)
            continue
        old = _holder(os.pread(fd, 1 << 16, 0))
        if old and old.get("host") not in (None, host):
            os.close(fd)
            raise GanforgeError(f"run folder {str(run_dir)!r} is locked by {_who(old)}, which cannot be checked "
                                f"from host {host}; if no run uses this folder, delete {path}")
        if old:
            print(f"ganforge: taking over the stale lock of {_who(old)}, which has exited", file=sys.stderr)
        me = {"pid": os.getpid(), "host": host, "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        return fd


@contextlib.contextmanager
def hold(run_dir: str | Path):
    """Hold the run folder's lock (creating the folder) until the block ends - also on errors and Ctrl-C.
    Folders created here are removed again if the block leaves them empty (e.g. a refused run)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"{str(run_dir)!r} is a file, not a run folder; choose another --out")
    created = [p for p in [run_dir, *run_dir.parents] if not p.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = None
    try:
        if fcntl is not None:
            fd = _acquire(run_dir)
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (run_dir / NAME).unlink()    # unlink while still locked: a waiter then retries on a new file
            os.close(fd)
        for p in created:                    # deepest first; stop at the first one that holds something
            try:
                p.rmdir()
            except OSError:
                break
