"""A small HTTP file server on 127.0.0.1 for tests that download things.

It serves in-memory bytes, records every request and fails on demand, so tests
can observe retries, resumes and refusals instead of assuming them. Nothing
here touches the network: the server binds 127.0.0.1 on a free port.

    with FileServer({"/w.pth": data}, url_path="/w.pth") as server:
        server.drops = 1               # cut the next body short after drop_after bytes
        download_file(server.url, dest)
        assert server.ranges == [None, "bytes=0-"]

A test module wraps it in its own ``server`` fixture (``with FileServer(...) as
server: yield server``). Tests set the fault attributes while the server runs;
the handler reads and consumes them under ``lock``.

What a GET gets, in order:

1. the next queued status of ``statuses_by_path[path]``, else of ``statuses``,
   as an empty response;
2. 404 when ``path`` is not in ``files``;
3. 416 (with ``Content-Range: bytes */size``) for ``Range: bytes=N-`` with
   N at or past the end, else 206 with the tail from N; 200 with the whole
   body when there is no Range or ``ignore_range`` is set;
4. while ``drops`` > 0: the full Content-Length promised, only ``drop_after``
   bytes sent, connection closed; while ``stalls`` > 0: ``drop_after`` bytes
   sent, then the handler waits for ``release`` (set when the server stops,
   at most 10 s) and closes; while ``trickle`` > 0: one byte every ``trickle``
   seconds until ``release`` is set (a server too slow to be useful).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

__all__ = ["FileServer", "Request"]


class Request(NamedTuple):
    """One GET the server received."""

    path: str
    range: str | None  # the Range header, None when absent
    user_agent: str | None


class FileServer:
    """A running server's contents, fault settings and request log.

    files: URL path -> body; any other path is a 404.
    requests: every Request received, in order (a plain list: clear() it to start over).
    statuses: answer the next requests, whatever their path, with these codes.
    statuses_by_path: URL path -> codes to answer the next requests for that path with.
    ignore_range: answer 200 with the whole body even when a Range is asked for.
    drops, stalls, drop_after, release: see the module docstring.
    base: "http://127.0.0.1:PORT"; url: base + the url_path given to the constructor.
    """

    def __init__(self, files: dict[str, bytes] | None = None, *, url_path: str = "") -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        self.statuses_by_path: dict[str, list[int]] = {}
        self.ignore_range = False
        self.drops = 0
        self.stalls = 0
        self.drop_after = 0
        self.trickle = 0.0
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url_path = url_path
        self.base = ""
        self.url = ""
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Views of the request log.
    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    @property
    def ranges(self) -> list[str | None]:
        return [r.range for r in self.requests]

    @property
    def user_agents(self) -> list[str | None]:
        return [r.user_agent for r in self.requests]

    def start(self) -> FileServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.file_server = self
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.url = self.base + self.url_path
        return self

    def stop(self) -> None:
        self.release.set()  # let stalled handlers finish
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass

    def _empty(self, code: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        state: FileServer = self.server.file_server
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append(Request(self.path, range_header, self.headers.get("User-Agent")))
            queued = state.statuses_by_path.get(self.path) or state.statuses
            status = queued.pop(0) if queued else None
        if status is not None:
            self._empty(status)
            return
        data = state.files.get(self.path)
        if data is None:
            self._empty(404)
            return

        start = 0
        if range_header and not state.ignore_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

        with state.lock:
            drop = state.drops > 0
            stall = not drop and state.stalls > 0
            if drop:
                state.drops -= 1
            elif stall:
                state.stalls -= 1
        try:
            if drop:  # promise the whole body, send part of it, hang up
                self.wfile.write(body[: state.drop_after])
            elif stall:  # send part of it, then go quiet until the test is done
                self.wfile.write(body[: state.drop_after])
                state.release.wait(10)
            elif state.trickle > 0:  # a byte now and then, never a timeout's worth of silence
                for i in range(len(body)):
                    if state.release.wait(state.trickle):
                        break
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up; nothing to answer
