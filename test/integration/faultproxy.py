"""A fault-injecting HTTP/1.1 proxy for the fault matrix (test code).

It sits between crunch-secrets and a real OpenBao dev server, speaks HTTP/1.1 on raw sockets
(so it can misbehave below the HTTP layer: reset a connection in the middle of a body, stall
before or after the headers, trickle a body, lie about its length), and records every request
(method, path, header names, arrival time). It never logs a request's headers or body: they
carry tokens and secret ids.

A scenario is a function `decide(n, method, path) -> Action` where `n` counts requests from 0.
Actions (see `Action`) either forward to the upstream server and optionally damage the answer,
or answer by themselves.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Action:
    """What the proxy does with one request.

    kind:
      "forward"        pass the request on and relay the answer
      "status"         answer `status` with `body` and `headers` (upstream not asked)
      "forward_status" pass the request on (so Vault acts on it), then answer `status` instead
      "reset_mid_body" forward, send the headers and half the body, then reset the connection
      "reset_before"   reset the connection without answering (upstream not asked)
      "stall_before"   wait `seconds` before anything, then behave as `then`
      "stall_after"    forward, send the headers, wait `seconds`, then the body
      "slow_body"      forward, send the body `chunk` bytes every `seconds`
      "truncate"       forward, then send only the first half of the body with a matching length
      "garbage"        answer 200 with `body` (not JSON) as a complete response
      "oversized"      answer 200 with a valid-looking body of `size` bytes
      "deep"           answer 200 with `data.password` nested `size` arrays deep
      "rewrite"        forward, then answer the upstream status with `rewrite(body)` instead of
                       the body (a hostile server's answer built on the real one)
    """

    kind: str = "forward"
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    chunk: int = 16
    size: int = 0
    then: "Action | None" = None
    rewrite: "Callable[[bytes], bytes] | None" = None


FORWARD = Action()


def stop_listening(sock: socket.socket, accept_thread: threading.Thread) -> None:
    """Closes a listening socket only once its accept thread is gone. Closing it first let the
    next listener get the same descriptor number while the old thread was between its `closed`
    check and accept(): the old thread then accepted (and dropped) the next test's first
    connection, about once in 40 runs ("Empty reply from server")."""
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() with an error
    except OSError:
        pass
    accept_thread.join(timeout=10)
    sock.close()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int,
                 decide: Callable[[int, str, str], Action] | None = None, port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.decide = decide or (lambda n, m, p: FORWARD)
        self.injected = 0  # requests answered with anything but a plain forward
        self.requests: list[dict] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.threads: list[threading.Thread] = []
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]

    def count(self, needle: str) -> int:
        return sum(1 for p in self.paths() if needle in p)

    def close(self) -> None:
        self.closed = True
        stop_listening(self.sock, self.accept_thread)

    # --- plumbing ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _read_request(f) -> tuple[str, str, dict[str, str], bytes] | None:
        line = f.readline(65536)
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) < 2:
            return None
        method, path = parts[0], parts[1]
        headers: dict[str, str] = {}
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in headers:
            body = f.read(int(headers["content-length"]))
        return method, path, headers, body

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            fwd = {k: v for k, v in headers.items() if k not in ("host", "connection", "content-length")}
            conn.request(method, path, body=body or None, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, data
        finally:
            conn.close()

    @staticmethod
    def _head(status: int, length: int, extra: dict[str, str] | None = None) -> bytes:
        reason = http.client.responses.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                 f"Content-Length: {length}"]
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def _reset(conn: socket.socket) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while not self.closed:
                req = self._read_request(f)
                if req is None:
                    return
                method, path, headers, body = req
                with self.lock:
                    n = len(self.requests)
                    self.requests.append({"method": method, "path": path, "headers": sorted(headers),
                                          "time": time.monotonic()})
                action = self.decide(n, method, path)
                if action.kind != "forward":
                    with self.lock:
                        self.injected += 1
                if not self._act(conn, action, method, path, headers, body):
                    return
        except OSError:
            return
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def _act(self, conn: socket.socket, a: Action, method: str, path: str,
             headers: dict[str, str], body: bytes) -> bool:
        """Performs `a`; returns False when the connection is gone."""
        if a.kind == "stall_before":
            time.sleep(a.seconds)
            return self._act(conn, a.then or FORWARD, method, path, headers, body)
        if a.kind == "reset_before":
            self._reset(conn)
            return False
        if a.kind == "status":
            data = a.body or b'{"errors":["injected by the fault proxy"]}'
            conn.sendall(self._head(a.status, len(data), a.headers) + data)
            return True
        if a.kind == "garbage":
            data = a.body or b"<html>502 Bad Gateway</html>\x00\xff"
            conn.sendall(self._head(200, len(data), a.headers) + data)
            return True
        if a.kind == "oversized":
            # A syntactically plausible start, then filler, streamed without holding it.
            prefix = b'{"data":{"data":{"key":"'
            conn.sendall(self._head(200, a.size))
            conn.sendall(prefix)
            left = a.size - len(prefix)
            block = b"x" * 65536
            while left > 0:
                k = min(left, len(block))
                conn.sendall(block[:k])
                left -= k
            return True
        if a.kind == "deep":
            data = b'{"data":{"password":' + b"[" * a.size + b"]" * a.size + b"}}"
            conn.sendall(self._head(200, len(data)) + data)
            return True
        status, reason, data = self._forward(method, path, headers, body)
        if a.kind == "forward":
            conn.sendall(self._head(status, len(data)) + data)
            return True
        if a.kind == "rewrite":
            data = a.rewrite(data) if a.rewrite else data
            conn.sendall(self._head(status, len(data)) + data)
            return True
        if a.kind == "forward_status":
            err = a.body or b'{"errors":["injected by the fault proxy after forwarding"]}'
            conn.sendall(self._head(a.status, len(err), a.headers) + err)
            return True
        if a.kind == "reset_mid_body":
            conn.sendall(self._head(status, len(data)) + data[: len(data) // 2])
            time.sleep(0.05)
            self._reset(conn)
            return False
        if a.kind == "stall_after":
            conn.sendall(self._head(status, len(data)))
            time.sleep(a.seconds)
            conn.sendall(data)
            return True
        if a.kind == "slow_body":
            conn.sendall(self._head(status, len(data)))
            for i in range(0, len(data), a.chunk):
                conn.sendall(data[i:i + a.chunk])
                time.sleep(a.seconds)
            return True
        if a.kind == "truncate":
            cut = data[: len(data) // 2]
            conn.sendall(self._head(status, len(cut)) + cut)
            return True
        raise ValueError(f"unknown fault action {a.kind}")


class CountingListener:
    """Accepts TCP connections on a free loopback port and counts them; `handle(conn)` (by
    default: close at once) serves each on the accept thread. `close()` stops listening through
    stop_listening, so a later listener given the same descriptor never loses a connection to
    this one's thread."""

    def __init__(self, backlog: int = 16) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed = False
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    def handle(self, conn: socket.socket) -> None:
        conn.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.handle(conn)

    def close(self) -> None:
        self.closed = True
        stop_listening(self.sock, self.accept_thread)


class TlsHandshakeFailure(CountingListener):
    """Accepts TCP connections and answers the TLS ClientHello with garbage, then closes."""

    @property
    def addr(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        try:
            conn.recv(4096)
            conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28" + b"not tls at all\r\n")
        except OSError:
            pass
        finally:
            conn.close()
