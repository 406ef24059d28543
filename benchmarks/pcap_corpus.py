"""A generated packet capture shaped like a mirroring window, for benchmarks/pcap.py.

One pcap (Ethernet, IPv4, microsecond timestamps) of keep-alive HTTP/1.1 between clients and
two servers: the primary on port 8081 and the mirror on 8082, each request sent to both with
the same ``x-request-id``. Thousands of connections are open at once and their packets
interleave; each connection carries several exchanges. Responses are JSON of 200–2000 bytes,
about a fifth of them chunked, cut into MSS-sized segments; every data segment is ACKed, and
connections open with a handshake and close with FINs, as a real capture shows them. Every
``PLANT_EVERY``-th request's mirror answer differs in one field, for the check.

    python benchmarks/pcap_corpus.py --packets 200000 out.pcap
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path

PRIMARY_PORT, MIRROR_PORT = 8081, 8082
MSS = 1448
PLANT_EVERY = 20
CHUNKED_SHARE = 0.2
OPEN_CONNECTIONS = 2000
EXCHANGES_PER_CONNECTION = (4, 12)
MAC_CLIENT, MAC_SERVER = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
WORDS = ("anvil", "bolt", "clamp", "drill", "file", "gauge", "hinge", "jig", "lathe", "mallet")


def _checksumless_ipv4(source: bytes, target: bytes, payload_length: int, ident: int) -> bytes:
    # Checksums are not verified by readers of captures (offloading leaves them zero, too).
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + payload_length, ident & 0xFFFF, 0x4000, 64, 6, 0,
        source, target,
    )  # fmt: skip


@dataclass
class _Flow:
    client: bytes
    client_port: int
    server_port: int
    client_seq: int
    server_seq: int
    requests: list[tuple[bytes, bytes]]  # (request, response) to send, in order
    state: int = 0  # 0 handshake, then 1 + 4 * exchange index + step, then closing


class _Writer:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")  # noqa: SIM115
        self.file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1))
        self.packets = 0
        self.time_us = 1_764_324_000 * 1_000_000  # 2025-11-28, then ~25 µs a packet
        self.ident = 0

    def segment(self, flow: _Flow, from_client: bool, flags: int, data: bytes = b"") -> None:
        server = b"\x0a\x00\x00\x02"
        source, target = (flow.client, server) if from_client else (server, flow.client)
        sport, dport = (
            (flow.client_port, flow.server_port)
            if from_client
            else (flow.server_port, flow.client_port)
        )
        seq, ack = (
            (flow.client_seq, flow.server_seq)
            if from_client
            else (flow.server_seq, flow.client_seq)
        )
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        self.ident += 1
        ip = _checksumless_ipv4(source, target, len(tcp) + len(data), self.ident)
        macs = MAC_SERVER + MAC_CLIENT if from_client else MAC_CLIENT + MAC_SERVER
        frame = macs + b"\x08\x00" + ip + tcp + data
        self.time_us += 25
        sec, usec = divmod(self.time_us, 1_000_000)
        self.file.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.packets += 1
        advance = len(data) + (1 if flags & 0x03 else 0)  # SYN and FIN take a sequence number
        if from_client:
            flow.client_seq = (flow.client_seq + advance) & 0xFFFFFFFF
        else:
            flow.server_seq = (flow.server_seq + advance) & 0xFFFFFFFF


SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def _body(request_id: int, side: str, seed: int) -> bytes:
    """The same document on both sides (drawn from the request's own seed), but for the
    planted difference."""
    rng = random.Random(seed * 1_000_003 + request_id)
    items = [
        {"sku": f"{rng.choice(WORDS)}-{rng.randrange(1000)}", "qty": rng.randrange(1, 9)}
        for _ in range(rng.randrange(2, 24))
    ]
    doc = {"id": request_id, "status": "paid", "items": items, "total": request_id % 997 + 0.5}
    if side == "mirror" and request_id % PLANT_EVERY == 0:
        doc["status"] = "pending"  # the planted difference
    return json.dumps(doc, separators=(",", ":")).encode()


def _chunked(request_id: int, seed: int) -> bool:
    return random.Random(seed * 7_919 + request_id).random() < CHUNKED_SHARE


def _response(body: bytes, chunked: bool) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    if not chunked:
        return head + b"content-length: %d\r\n\r\n" % len(body) + body
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
    return head + b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def _request(request_id: int, port: int) -> bytes:
    return (
        f"GET /api/orders/{request_id} HTTP/1.1\r\nhost: orders:{port}\r\n"
        f"x-request-id: req-{request_id:08d}\r\nuser-agent: bench/1\r\naccept: */*\r\n\r\n"
    ).encode()


def generate(path: Path, packets: int, seed: int = 7) -> dict[str, int]:
    """Write a capture of about ``packets`` packets; its request count per side and the
    planted differences."""
    rng = random.Random(seed)
    writer = _Writer(path)
    next_request = 0
    next_port = 20000
    open_flows: list[_Flow] = []
    requests = planted = 0

    def new_flows() -> None:
        nonlocal next_request, next_port, requests, planted
        count = rng.randint(*EXCHANGES_PER_CONNECTION)
        ids = list(range(next_request, next_request + count))
        next_request += count
        requests += count
        planted += sum(1 for i in ids if i % PLANT_EVERY == 0)
        client = bytes([10, 1, (next_port >> 8) & 0xFF, next_port & 0xFF])
        for side, port in (("primary", PRIMARY_PORT), ("mirror", MIRROR_PORT)):
            exchanges = [
                (_request(i, port), _response(_body(i, side, seed), _chunked(i, seed))) for i in ids
            ]
            flow = _Flow(
                client, next_port, port, rng.getrandbits(32), rng.getrandbits(32), exchanges
            )
            open_flows.append(flow)
            next_port = next_port + 1 if next_port < 65000 else 20000

    # New connections stop a little early: the ones still open finish after the target.
    opening = int(packets * 0.83)
    while writer.packets < opening or open_flows:
        while writer.packets < opening and len(open_flows) < OPEN_CONNECTIONS:
            new_flows()
        if not open_flows:
            break
        index = rng.randrange(len(open_flows))
        flow = open_flows[index]
        if _step(writer, flow):
            open_flows[index] = open_flows[-1]
            open_flows.pop()
    writer.file.close()
    return {"packets": writer.packets, "requests": requests, "planted": planted}


def _step(writer: _Writer, flow: _Flow) -> bool:
    """Send the flow's next packets (one exchange step); True once the flow is closed."""
    if flow.state == 0:
        writer.segment(flow, True, SYN)
        writer.segment(flow, False, SYN | ACK)
        writer.segment(flow, True, ACK)
        flow.state = 1
        return False
    exchange = (flow.state - 1) // 2
    if exchange >= len(flow.requests):
        writer.segment(flow, True, FIN | ACK)
        writer.segment(flow, False, FIN | ACK)
        writer.segment(flow, True, ACK)
        return True
    request, response = flow.requests[exchange]
    if (flow.state - 1) % 2 == 0:
        writer.segment(flow, True, PSH | ACK, request)
        writer.segment(flow, False, ACK)
    else:
        for start in range(0, len(response), MSS):
            writer.segment(flow, False, PSH | ACK, response[start : start + MSS])
        writer.segment(flow, True, ACK)
    flow.state += 1
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(generate(args.out, args.packets, args.seed))


if __name__ == "__main__":
    main()
