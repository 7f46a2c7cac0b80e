"""HTTP layer: a threading server whose responses (and misbehaviours) are written by hand so that faults
like trickling, hanging or truncated bodies are possible, and so that stop() can cut every connection."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .context import Host
from .envelope import JSON_CT, Reply, Request, serial

MAX_BODY = 4 * 1024 * 1024
SPA_SHELL = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>iSolarCloud (simulated)</title></head>
<body><p>iSolarCloud simulator: open #/authorized-app?redirectUrl=... to approve access.</p><script>
var route = "#/authorized-app";
if (location.hash.indexOf(route) === 0) { location.replace("/authorized-app" + location.hash.slice(route.length)); }
</script></body></html>
"""


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # hung handlers must never delay stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Host) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def cut_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n"


def html_error(status: int) -> bytes:
    line = _status_line(status).split(" ", 1)[1].strip()
    return (f"<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n"
            f"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sim.log_requests:
            super().log_message(format, *args)

    # Request side ------------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        sim = self.server.sim
        raw = self._read_body()
        path = urlsplit(self.path).path
        if raw is None:
            self.close_connection = True
            self._write(sim.oversized(path, dict(self.headers.items())))
            return
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        req = Request(path=path, headers=dict(self.headers.items()), body=body, time=sim.clock())
        self._write(sim.handle(req))

    def do_GET(self) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        if url.path == "/timestamp":
            # Documented helper for encrypted calls (server time, UTC ms).
            self._write(Reply(raw=str(int(sim.clock() * 1000)).encode(), content_type="text/plain"))
        elif url.path == "/":
            # The portal is a single-page app: its consent page is the route `#/authorized-app?...`, which a
            # browser never sends to the server. This shell does what the app's router does: it opens the
            # route (below) with the query that follows the `#/authorized-app`.
            self._write(Reply(raw=SPA_SHELL, content_type="text/html; charset=utf-8"))
        elif url.path in ("/authorized-app", "/authorize"):
            # Stand-in for the owner's consent page: approve at once and redirect with ?code=.
            query = parse_qs(url.query)
            redirect = (query.get("redirectUrl") or query.get("redirect_uri") or [""])[0]
            if not redirect:
                self._write(Reply(raw=b"redirectUrl missing", status=400, content_type="text/plain"))
                return
            code = sim.create_authorization_code(redirect)
            sep = "&" if "?" in redirect else "?"
            self._write(Reply(raw=b"", status=302, content_type="text/plain",
                              headers={"Location": f"{redirect}{sep}code={code}"}))
        else:
            self._write(Reply(raw=html_error(405), status=405, content_type="text/html"))

    # Response side -----------------------------------------------------------------------------
    def _write(self, reply: Reply) -> None:
        stop = self.server.sim.stopping
        if reply.action == "hang":
            self.log_request("-", "hang")
            stop.wait()
            self.close_connection = True
            return
        if reply.action == "close":
            self.log_request("-", "close")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.action == "huge":
            self.log_request(200, self.server.sim.huge_size)
            self._write_huge(self.server.sim.huge_size)
            return
        if reply.raw is not None:
            body = reply.raw
        else:
            body = json.dumps(reply.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # The access log line (--log-requests): method, path and status, never a header or body.
        self.log_request(reply.status, len(body))
        if reply.action == "slow":
            self.close_connection = True
        data = self._head(reply.status, reply.content_type, len(body), reply.headers) + body
        try:
            if reply.action == "slow":
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if stop.wait(self.server.sim.slow_byte_interval):
                        return
            else:
                self.wfile.write(data)
                self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _head(self, status: int, content_type: str, length: int, extra: dict[str, str]) -> bytes:
        lines = [
            _status_line(status),
            f"Date: {formatdate(time.time(), usegmt=True)}\r\n",
            f"Content-Type: {content_type}\r\n",
            f"Content-Length: {length}\r\n",
        ]
        lines += [f"{k}: {v}\r\n" for k, v in extra.items()]
        if self.close_connection:
            lines.append("Connection: close\r\n")
        return ("".join(lines) + "\r\n").encode("latin-1")

    def _write_huge(self, size: int) -> None:
        """A syntactically valid, enormous success body, generated on the fly (never held in memory)."""
        sim = self.server.sim
        head = {"req_serial_num": serial(sim.clock()), "result_code": "1", "result_msg": "success"}
        prefix = json.dumps(head)[:-1].encode() + b', "result_data": {"pageList": ['
        item = json.dumps({"ps_id": 1, "ps_name": "huge", "description": "x" * 900}).encode() + b","
        suffix = b'{"ps_id":2,"ps_name":"end"}],"rowCount":2}}'
        count = max(1, -(-(size - len(prefix) - len(suffix)) // len(item)))
        total = len(prefix) + count * len(item) + len(suffix)
        self.close_connection = True
        block = item * max(1, 65536 // len(item))
        per_block = len(block) // len(item)
        try:
            self.wfile.write(self._head(200, JSON_CT, total, {}) + prefix)
            left = count
            while left > 0:
                if sim.stopping.is_set():
                    return
                n = min(per_block, left)
                self.wfile.write(block if n == per_block else item * n)
                left -= n
            self.wfile.write(suffix)
            self.wfile.flush()
        except OSError:
            pass
