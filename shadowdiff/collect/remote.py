"""Inputs named by URL (``s3://bucket/logs/primary.log``, ``gs://bucket/taps/``,
``s3://bucket/2026-12-07/*.log.gz``): listed, then fetched into the run's working area before
anything reads them.

Every reader here wants a local file. DuckDB reads a log by path and a worker cuts it by byte
range; the capture and tap collectors map or open files; worker processes and Dask workers
open what the run hands them by path. So the run lists each URL, copies its objects next to
its own work (many at once: an object store answers a request in milliseconds and serves many
in parallel), and reads the copies under the URLs' names. Locations, rejects and the
manifest name the objects, and the copies go with the working area when the run ends.

- **What a URL names:** one object; a prefix, read like a directory (every object under it,
  hidden names skipped, in key order); or a glob (``*``, ``?``, ``[…]`` within one level,
  ``**`` across levels), matched against the keys under its fixed part.
- **Which filesystem:** pyarrow's for S3, GCS, HDFS and Azure. Credentials, regions and
  endpoints come from the usual places (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
  ``GOOGLE_APPLICATION_CREDENTIALS``, ``STORAGE_EMULATOR_HOST``…). Any other protocol goes to
  fsspec, when its implementation is installed.
- **Failures are the run's input errors** (exit 2, naming the URL): an unknown protocol, no
  credentials, a bucket or key that is not there, a read cut off.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from shadowdiff.collect.base import Input
from shadowdiff.errors import InputError

# A scheme of two letters or more: ``C:/x`` is a Windows path, not a URL.
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
MAGIC = re.compile(r"[*?\[]")
PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})
# Objects fetched at once: enough to hide a request's latency behind the others' transfers.
FETCHERS = 16
COPY_CHUNK = 4 * 1024 * 1024
# How long GCS retries before it gives up: without credentials it would try for 15 minutes.
GCS_RETRY_LIMIT = timedelta(seconds=20)
SKIPPED_NAMES = (".DS_Store",)


def is_url(text: str) -> bool:
    """Whether ``text`` names an input by URL rather than a local path (``file://`` URLs are
    local paths: see ``local_path``)."""
    return URL.match(text) is not None and not text.lower().startswith("file://")


def local_path(text: str) -> str:
    """``text`` with a ``file://`` scheme taken off (as a path); anything else as it is."""
    if text.lower().startswith("file://"):
        return unquote(urlsplit(text).path)
    return text


@dataclass(frozen=True)
class _Object:
    key: str  # the filesystem's path of the object
    parts: tuple[str, ...]  # its name below what the URL names, one entry per level
    size: int


def fetch(url: str, side: str | None, into: Path, say: Callable[[str], None]) -> list[Input]:
    """Copy every object ``url`` names into a fresh folder under ``into``, and the inputs that
    read the copies under the objects' URLs."""
    filesystem, path = _filesystem(url)
    objects = _listed(filesystem, path, url)
    folder = Path(tempfile.mkdtemp(prefix="url-", dir=into))
    size = sum(o.size for o in objects)
    say(f"fetching {_count(len(objects))} ({size / 1e6:.1f} MB) from {url}")

    def copy(found: _Object) -> Path:
        target = folder.joinpath(*found.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The bytes as stored: pyarrow would otherwise inflate a ``.gz`` on the way.
            stream = filesystem.open_input_stream(found.key, compression=None)
            with stream, open(target, "wb") as out:
                shutil.copyfileobj(stream, out, COPY_CHUNK)
        except (OSError, pa.ArrowException) as e:
            raise InputError(
                f"{_url_of(url, path, found)}: cannot be fetched ({_reason(e)})."
            ) from e
        if target.stat().st_size != found.size:
            raise InputError(
                f"{_url_of(url, path, found)}: the object changed while it was fetched "
                f"({found.size} bytes listed, {target.stat().st_size} read). Fetch the "
                "window again once it is written."
            )
        return target

    with ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="shadowdiff-fetch") as pool:
        copies = list(pool.map(copy, objects))
    return [
        Input(target, side, shown=_url_of(url, path, found))
        for target, found in zip(copies, objects, strict=True)
    ]


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that reads ``url``, and the URL's path within it."""
    scheme = url.split("://", 1)[0].lower()
    try:
        if scheme in ("gs", "gcs"):
            # pyarrow's own parsing, with a bound on its retries.
            _, path = pafs.FileSystem.from_uri(url)
            return pafs.GcsFileSystem(retry_time_limit=GCS_RETRY_LIMIT), path
        if scheme in PYARROW_SCHEMES:
            found, path = pafs.FileSystem.from_uri(url)
            return found, path
    except (OSError, ValueError, pa.ArrowException) as e:
        raise InputError(f"{url}: cannot be opened ({_reason(e)}).") from e
    return _fsspec_filesystem(url, scheme)


def _fsspec_filesystem(url: str, scheme: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError as e:
        raise InputError(
            f"{url}: no filesystem reads {scheme}:// URLs here. pyarrow reads s3://, gs://, "
            "hdfs:// and abfs://; for another protocol install fsspec and its implementation."
        ) from e
    try:
        found, path = fsspec.core.url_to_fs(url)
    except ImportError as e:  # fsspec knows the protocol, its package is not installed
        raise InputError(f"{url}: cannot be read here ({e}).") from e
    except (ValueError, OSError) as e:
        raise InputError(f"{url}: cannot be opened ({e}).") from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(found)), path


def _listed(filesystem: pafs.FileSystem, path: str, url: str) -> list[_Object]:
    """The objects ``path`` names (an object, a prefix, a glob), in key order."""
    parts = [p for p in path.split("/") if p]
    magic = next((i for i, part in enumerate(parts) if MAGIC.search(part)), None)
    root = path if magic is None else "/".join(parts[:magic])
    if path.startswith("/") and magic is not None:
        root = "/" + root
    try:
        info = filesystem.get_file_info(root)
        if magic is None and info.type == pafs.FileType.File:
            return [_Object(root, (root.rsplit("/", 1)[-1],), info.size)]
        if info.type != pafs.FileType.Directory:
            raise InputError(f"{url}: no such object or prefix.")
        below = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{url}: cannot be listed ({_reason(e)}).") from e
    start = len(root.rstrip("/")) + 1
    objects = []
    for entry in below:
        if entry.type != pafs.FileType.File:
            continue
        relative = tuple(p for p in entry.path[start:].split("/") if p)
        if any(p.startswith(".") or p in SKIPPED_NAMES for p in relative):
            continue
        if magic is not None and not _matches(relative, parts[magic:]):
            continue
        objects.append(_Object(entry.path, relative, entry.size))
    if not objects:
        what = "the pattern matches no object" if magic is not None else "no object under it"
        raise InputError(f"{url}: {what}.")
    return sorted(objects, key=lambda o: o.parts)


def _matches(name: tuple[str, ...], pattern: list[str]) -> bool:
    """Whether the levels of ``name`` match those of a glob, ``**`` standing for any number of
    levels (none included)."""
    if not pattern:
        return not name
    if pattern[0] == "**":
        return any(_matches(name[i:], pattern[1:]) for i in range(len(name) + 1))
    return bool(name) and fnmatchcase(name[0], pattern[0]) and _matches(name[1:], pattern[1:])


def _url_of(url: str, path: str, found: _Object) -> str:
    """The URL of an object ``url`` named: ``url`` itself for one object, else the URL of what
    it lists under, with the object's levels below it."""
    if found.key == path.rstrip("/"):
        return url
    scheme, rest = url.split("://", 1)
    levels = rest.split("/")
    magic = next((i for i, part in enumerate(levels) if MAGIC.search(part)), None)
    base = "/".join(levels if magic is None else levels[:magic]).rstrip("/")
    return f"{scheme}://{base}/" + "/".join(found.parts)


def _count(n: int) -> str:
    return "1 object" if n == 1 else f"{n} objects"


def _reason(error: BaseException) -> str:
    """The first line of a filesystem's message (the AWS and GCS clients add pages of detail)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
