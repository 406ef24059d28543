"""``shadowdiff capture`` for real, on loopback: a capture of the mirroring lab's traffic that the
pipeline reads and diffs, the kernel's drop counter, clean stops on SIGTERM and --duration,
and the error without the privilege to capture."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import shadowdiff
from shadowdiff import capture
from shadowdiff.testing import backends, lab

pytestmark = pytest.mark.integration

LOOPBACK = "lo"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capture_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadowdiff", "capture", *args]


def test_the_kernel_drop_counter_is_read_and_reaches_the_sidecar(tmp_path: Path) -> None:
    """A socket with a tiny buffer that nobody reads while a burst arrives must drop, and
    the capture must say how many."""
    port = free_udp_port()
    sock = capture.open_socket(LOOPBACK, f"udp port {port}", 4096)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(3000):
                sender.sendto(b"x" * 512, ("127.0.0.1", port))
        time.sleep(0.2)
        drops = capture.kernel_drops(sock.ins)
    finally:
        sock.close()
    assert drops > 0
    writer = capture.RotatingPcap(tmp_path / "c", 1, 65535, LOOPBACK, None, 4096)
    writer.write(b"\x00" * 60, time.time())
    writer.dropped(drops)
    writer.close()
    stats = capture.read_sidecar(tmp_path / "c-00000.pcap")
    assert stats is not None and stats.kernel_drops == drops and stats.complete
    assert f"lost {drops:,} packets" in str(capture.sidecar_note(tmp_path / "c-00000.pcap"))


def test_sigterm_stops_the_capture_with_every_file_closed(tmp_path: Path) -> None:
    port = free_udp_port()
    prefix = tmp_path / "cap" / "c"
    process = subprocess.Popen(
        capture_command("-i", LOOPBACK, "-f", f"udp port {port}", "-w", str(prefix)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sidecar = Path(f"{prefix}-00000.pcap.stats.json")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the capture is up and has seen some
                sender.sendto(b"ping", ("127.0.0.1", port))
                if sidecar.exists() and Path(f"{prefix}-00000.pcap").stat().st_size > 24:
                    break
                time.sleep(0.05)
            for _ in range(50):
                sender.sendto(b"ping", ("127.0.0.1", port))
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    stats = json.loads(sidecar.read_text())
    assert stats["complete"] and stats["packets"] >= 50
    assert "packets" in out and str(prefix) in out
    size = Path(stats["file"]).stat().st_size
    assert size == 24 + sum(16 + 46 for _ in range(stats["packets"]))  # every record whole


def test_duration_and_rotation_by_size(tmp_path: Path) -> None:
    port = free_udp_port()
    prefix = tmp_path / "c"
    stop = threading.Event()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not stop.is_set():
                sender.sendto(b"y" * 400, ("127.0.0.1", port))
                time.sleep(0.001)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        started = time.monotonic()
        result = subprocess.run(
            capture_command(
                "-i", LOOPBACK, "-f", f"udp port {port}", "-w", str(prefix),
                "--duration", "2", "--rotate-size", "20kB",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        stop.set()
        sender.join()
    assert result.returncode == 0, result.stderr
    assert took < 20
    files = sorted(tmp_path.glob("c-*.pcap"))
    assert len(files) >= 3
    for path in files:
        stats = capture.read_sidecar(path)
        assert stats is not None and stats.complete
        assert stats.bytes <= 20_000 + 500  # a file closes at the first frame past the size


def test_without_the_privilege_to_capture_the_error_says_what_to_do(tmp_path: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_net_raw = 24, 13

    def without_net_raw() -> None:
        # Out of the bounding set, CAP_NET_RAW is not granted even to root on exec.
        if libc.prctl(pr_capbset_drop, cap_net_raw, 0, 0, 0) != 0:
            os._exit(99)

    result = subprocess.run(
        capture_command("-i", LOOPBACK, "-w", str(tmp_path / "c"), "--duration", "1"),
        capture_output=True,
        text=True,
        preexec_fn=without_net_raw,
        timeout=60,
        check=False,
    )
    if result.returncode == 99:
        pytest.skip("this process may not drop a capability (no CAP_SETPCAP)")
    assert result.returncode == 2, result.stderr
    assert "CAP_NET_RAW" in result.stderr and "Traceback" not in result.stderr


# --- the pipeline on a capture of the mirroring lab -----------------------------------------


def planted(record: object) -> dict[str, set[tuple[str, str, str]]]:
    return {
        sent.request_id: {
            (p.part, p.path or "status", p.kind)
            for p in backends.planted_for(sent.request)
            if p.part != "latency"
        }
        for sent in record.sent  # type: ignore[attr-defined]
    }


def test_a_capture_of_mirrored_traffic_finds_the_planted_differences(
    make_lab: Callable[..., lab.Lab], tmp_path: Path
) -> None:
    prefix = tmp_path / "cap" / "window"
    with make_lab() as running:
        ports = {name: out.backend_port for name, out in running.sides.items()}
        bpf = " or ".join(f"tcp port {port}" for port in ports.values())
        up = threading.Event()
        stop = threading.Event()
        totals: list[capture.Totals] = []
        settings = capture.Settings(LOOPBACK, prefix, bpf=bpf)
        thread = threading.Thread(
            target=lambda: totals.append(capture.capture(settings, ready=up.set, stop=stop))
        )
        thread.start()
        try:
            assert up.wait(30)
            record = running.drive(60, seed=11)
            time.sleep(0.5)  # the last mirrored answers
        finally:
            stop.set()
            thread.join(60)
    assert totals and totals[0].kernel_drops == 0
    rules = tmp_path / "rules.toml"
    volatile = sorted({v.path for v in backends.VOLATILE if v.part == "body"})
    rules.write_text(
        "[sides]\n"
        f'primary = "server_port = {ports["primary"]}"\n'
        f'mirror = "server_port = {ports["mirror"]}"\n'
        f"[ignore]\nbody = {json.dumps(volatile)}\n"
    )
    out = tmp_path / "run"
    result = shadowdiff.run(inputs=[str(prefix.parent)], rules=str(rules), out=out)
    conservation = result.manifest["conservation"]
    assert conservation["primary"]["paired"] == 60 == conservation["mirror"]["paired"]
    con = shadowdiff.open(out)
    found: dict[str, set[tuple[str, str, str]]] = {}
    for request_id, part, pattern, kind in con.sql(
        "SELECT request_id, part, pattern, kind FROM diffs WHERE NOT noise"
    ).fetchall():
        found.setdefault(request_id, set()).add((part, pattern, kind))
    expected = planted(record)
    assert any(expected.values())
    for request_id, plants in expected.items():
        assert plants <= found.get(request_id, set()), request_id
