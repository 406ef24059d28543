"""The scapy baseline of benchmarks/pcap.py: every packet of a capture through ``PcapReader``
with full dissection (scapy's HTTP layer loaded, as a user decoding HTTP with scapy would),
counting the HTTP requests and responses it sees. Prints the counts as JSON."""

from __future__ import annotations

import json
import sys

from scapy.all import PcapReader, bind_bottom_up, load_layer
from scapy.layers.http import HTTP, HTTPRequest, HTTPResponse
from scapy.layers.inet import TCP

load_layer("http")
for port in (8081, 8082):  # the capture's servers (scapy binds HTTP to 80 and 8080 only)
    bind_bottom_up(TCP, HTTP, sport=port)
    bind_bottom_up(TCP, HTTP, dport=port)
requests = responses = packets = 0
with PcapReader(sys.argv[1]) as reader:
    for packet in reader:
        packets += 1
        requests += packet.haslayer(HTTPRequest)
        responses += packet.haslayer(HTTPResponse)
print(json.dumps({"packets": packets, "requests": requests, "responses": responses}))
