"""A real authoritative-style DNS server on 127.0.0.1 (UDP and TCP, one port) for tests.

It answers TXT queries from `records` (name -> list of TXT values; change it while the
server runs), NXDOMAIN for names it does not know, and an empty NOERROR answer for other
types of a known name. Messages are parsed and built with dnspython, so the client under
test speaks real DNS over real sockets. `queries` counts what was asked.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from collections import Counter
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT


def _chunks(value: str) -> list[bytes]:
    """A TXT value longer than 255 bytes becomes several character-strings."""
    raw = value.encode("utf-8")
    return [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]


class DnsServer:
    def __init__(self, records: dict[str, list[str]] | None = None) -> None:
        self.records: dict[str, list[str]] = dict(records or {})
        self.queries: Counter[str] = Counter()
        self.silent = False  # True: never answer (a timeout test)
        self._lock = threading.Lock()
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                with contextlib.suppress(OSError):
                    head = conn.recv(2)
                    if len(head) < 2:
                        return
                    (n,) = struct.unpack("!H", head)
                    data = b""
                    while len(data) < n:
                        more = conn.recv(n - len(data))
                        if not more:
                            return
                        data += more
                    reply = server.answer(data)
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)

        socketserver.UDPServer.allow_reuse_address = True
        # UDP takes a free port; TCP must get the same number, which another process may
        # hold (tests run in parallel): then try another pair.
        for attempt in range(50):
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = self.udp.server_address[1]
            self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp,
                                                       bind_and_activate=False)
            self.tcp.allow_reuse_address = True
            try:
                self.tcp.server_bind()
                self.tcp.server_activate()
                break
            except OSError:
                self.tcp.server_close()
                self.udp.server_close()
                if attempt == 49:
                    raise
        self.udp.daemon_threads = self.tcp.daemon_threads = True
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.02},
                                         daemon=True) for s in (self.udp, self.tcp)]

    @property
    def port(self) -> int:
        return int(self.udp.server_address[1])

    @property
    def address(self) -> str:
        """What `settings.dns_nameserver` takes."""
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes | None:
        if self.silent:
            return None
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        with self._lock:
            self.queries[name] += 1
            values = self.records.get(name)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif q.rdtype == dns.rdatatype.TXT and values:
            rrset = dns.rrset.RRset(q.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for v in values:
                rrset.add(TXT(dns.rdataclass.IN, dns.rdatatype.TXT, _chunks(v)), ttl=60)
            response.answer.append(rrset)
        return response.to_wire()

    def __enter__(self) -> DnsServer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()
        for t in self.threads:
            t.join(timeout=5)
