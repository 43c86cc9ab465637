"""The one way ganforge fetches a file (data archives, FID Inception and VGG19 weights): atomically, checked.

The bytes go to a temporary file in the destination folder, hashed while they arrive, and are renamed into
place only when the digest matches; an interrupted, refused or corrupt transfer leaves nothing that a later
run would trust. Importable from every layer (like errors.py): it depends on nothing else in ganforge.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from .errors import GanforgeError


NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def file_hash(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir(path=None) -> Path:
    """Where downloaded weights live: `path`, else $GANFORGE_CACHE, else ~/.cache/ganforge."""
    if path is not None:
        return Path(path).expanduser()
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge").expanduser()


def fetch(url: str, dest, *, algorithm: str = "sha256", expected: str | None = None, what: str = "file",
          fix: str = "", timeout: float = 60.0) -> Path:
    """Download `url` to `dest`. `expected` is the digest (or a prefix of it) the bytes must have; None skips
    the check. `what` names the file and `fix` says what the user can do instead, in the error messages."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fix = fix or f"download it by hand and place it at {dest}"
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        h = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if expected and not h.hexdigest().startswith(expected):
            raise GanforgeError(f"downloaded {what} from {url} has the wrong checksum ({NAMES.get(algorithm, algorithm)} "
                                f"{h.hexdigest()}, expected {expected!r}); the file was discarded and nothing was "
                                f"saved. Try again, check the URL, or {fix}")
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as e:   # URLError, HTTPError, cut-off transfers
        raise GanforgeError(f"could not download {what} from {url} ({e}); check the connection, or {fix}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
