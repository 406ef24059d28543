"""The headers of a stretch decoded at once (``pcap_headers``) must give what decoding each
frame on its own gives: the same segments, in capture order, and the same skipped counts."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pcapgen as gen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcapgen import Conversation, http_request, http_response

from shadowdiff.collect import pcap_headers, pcap_records
from shadowdiff.collect.pcap_headers import Skipped

GET = http_request("GET", "/", (("Host", "app"),))


def _frames(seed: int) -> list[gen.Frame]:
    """Frames of many shapes: plain, VLAN-tagged, IPv6, IP options, padding, fragments, cut
    short, not IP, on other links; some bytes flipped."""
    rng = random.Random(seed)
    out: list[gen.Frame] = []
    for index in range(rng.randint(1, 6)):
        ipv6 = rng.random() < 0.2
        talk = Conversation(
            ("fd00::1" if ipv6 else f"10.0.{index}.1", 40000 + index),
            ("fd00::2" if ipv6 else "10.0.0.2", 8080),
            vlans=(7,) if rng.random() < 0.2 else (),
        )
        link = rng.choice([gen.LINK_ETHERNET] * 4 + [gen.LINK_SLL, gen.LINK_RAW])
        for packet in gen.session([(GET, http_response(200, b"x" * rng.randrange(3000)))], talk):
            data = gen.FRAMERS[link](packet)
            if link == gen.LINK_ETHERNET and not ipv6 and rng.random() < 0.1:
                data = data[:14] + gen.ip_packet(packet, b"\x01" * 4 * rng.randint(1, 10))
            if rng.random() < 0.1:
                data += b"\0" * rng.randint(1, 30)  # padding past the IP length
            if rng.random() < 0.1:
                data = data[: rng.randrange(len(data) + 1)]
            if rng.random() < 0.1:
                flipped = bytearray(data)
                for _ in range(rng.randint(1, 4)):
                    if flipped:
                        flipped[rng.randrange(len(flipped))] ^= rng.randint(1, 255)
                data = bytes(flipped)
            out.append(gen.Frame(data, packet.time, link))
    rng.shuffle(out)
    return out


def _stretch(frames: list[gen.Frame]) -> pcap_records.Frames:
    buf = b"".join(f.data for f in frames)
    ends = np.cumsum([len(f.data) for f in frames], dtype=np.int64)
    return pcap_records.Frames(
        buf,
        1,
        np.arange(len(frames), dtype=np.int64),
        ends - np.array([len(f.data) for f in frames], dtype=np.int64),
        ends,
        np.array([f.linktype for f in frames], dtype=np.int64),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_stretch_decodes_as_frame_by_frame(tmp_path: Path, seed: int) -> None:
    frames = _frames(seed)
    stretch = _stretch(frames)
    skipped = Skipped()
    found = pcap_headers.segments(stretch, skipped)
    one_by_one = Skipped()
    expected = []
    for i, frame in enumerate(frames):
        start, end = int(stretch.starts[i]), int(stretch.ends[i])
        segment = pcap_headers._segment(frame.linktype, stretch.buf, start, end, one_by_one)
        if segment is not None:
            key, _, _, tcp, stop = segment
            fields = pcap_headers._TCP.unpack_from(stretch.buf, tcp + 4)
            data_start = tcp + ((fields[2] >> 4) << 2)
            expected.append((i + 1, key, fields[0], fields[1], fields[3], data_start, stop))
    got = list(
        zip(
            found.numbers.tolist(),
            found.keys,
            found.seqs.tolist(),
            found.acks.tolist(),
            found.flags.tolist(),
            found.data_starts.tolist(),
            found.data_ends.tolist(),
            strict=True,
        )
    )
    assert got == expected
    assert asdict(skipped) == asdict(one_by_one)
    _check_numbering(found)


def _check_numbering(found: pcap_headers.Segments) -> None:
    """Equal keys share a flow number, and a key and its reverse a pair number."""
    flows: dict[bytes, int] = {}
    pairs: dict[bytes, int] = {}
    for key, shape, flow, pair in zip(
        found.keys, found.shapes, found.flows.tolist(), found.pairs.tolist(), strict=True
    ):
        assert flows.setdefault(key, flow) == flow
        ipv6, tags = shape or (False, b"")
        side = min(key, pcap_headers.reverse_key(key, ipv6, tags))
        assert pairs.setdefault(side, pair) == pair
    assert len(set(flows.values())) == len(flows)
    assert len(set(pairs.values())) == len(pairs)
