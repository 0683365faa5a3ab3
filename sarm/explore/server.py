"""The `sarm explore` HTTP server: the standard library's ThreadingHTTPServer, a token, and checks.

Routes (the page and its assets are public package code; every other one needs `?token=` or the
`X-Sarm-Token` header, else 403):
    GET /                      the page (package data in `sarm/explore/static/`)
    GET /static/NAME           a page asset (only files of that folder)
    GET /api/episodes          the episode list (`Catalog.episodes`; `?format=columns`: by column)
    GET /api/episode/N         one episode (`Catalog.episode`)
    GET /api/frame/N?camera=KEY&frame=F   one decoded frame as JPEG (`sarm.explore.frames`)
    GET /files/REL             a file of the dataset root, with HTTP range requests (206, Content-Range)
    GET /files/@progress, /files/@weights   the progress / weights file given on the command line
    POST /api/curation[/download]  the keep / drop export (`sarm.explore.curation`)
Writes (POST/PUT/DELETE) also need the Host to be this server's own and, when sent, the Origin to match:
a page of another site, or a DNS-rebound name, cannot write. A checked write to no route is answered 404,
an unchecked one 403.
    POST /api/episode/N/{validate,save,export}   label edits (`sarm.explore.edit`)
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sarm.explore import edit
from sarm.explore.catalog import Catalog
from sarm.explore.curation import curation_route
from sarm.explore.frames import frame_route

STATIC = Path(__file__).with_name("static")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


def safe_path(root: Path, relative: str) -> Path | None:
    """`relative` (already URL-decoded) as a file under `root`, or None: absolute paths, `..` parts,
    backslashes, NUL, and symlinks whose target leaves the root are refused."""
    if not relative or relative.startswith(("/", "\\")) or "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts) or re.match(r"^[A-Za-z]:", relative):
        return None
    root = root.resolve()
    path = (root / relative).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path if path.is_file() else None


class ExploreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        catalog: Catalog,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        export_dir=None,
        repo_id: str | None = None,
    ):
        self.catalog = catalog
        self.export_dir = Path(export_dir or catalog.root).resolve()  # where curation exports go
        self.repo_id = repo_id or "<repo_id>"  # named in LeRobot's delete command of the export
        self.token = token or secrets.token_urlsafe(24)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/?token={self.token}"

    def own_hosts(self) -> set[str]:
        port = self.server_address[1]
        names = {self.server_address[0], "127.0.0.1", "localhost", "[::1]"}
        return {f"{n}:{port}" for n in names}


class _Handler(BaseHTTPRequestHandler):
    server: ExploreServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # quiet: the command's stdout is the URL
        pass

    # ----------------------------------------------------------------------------------- checks

    def _token_ok(self, query: dict) -> bool:
        given = self.headers.get("X-Sarm-Token") or (query.get("token") or [""])[0]
        return secrets.compare_digest(given.encode(), self.server.token.encode())

    def _write_ok(self, query: dict) -> bool:
        if not self._token_ok(query) or self.headers.get("Host") not in self.server.own_hosts():
            return False
        origin = self.headers.get("Origin")
        return origin is None or origin.removeprefix("http://") in self.server.own_hosts()

    # ---------------------------------------------------------------------------------- replies

    def _send(self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8", extra=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value, allow_nan=False).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _file(self, path: Path) -> None:
        size = path.stat().st_size
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if not m or (not m[1] and not m[2]):
                return self._send(416, b"", extra={"Content-Range": f"bytes */{size}"})
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
            else:
                start = max(size - int(m[2]), 0)
            if start >= size or start > end:
                return self._send(416, b"", extra={"Content-Range": f"bytes */{size}"})
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):  # the browser seeks and drops the rest
                    return
                left -= len(chunk)

    # ----------------------------------------------------------------------------------- routes

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = unquote(url.path)
        if path in ("/", "/index.html"):  # the page and its assets are the package's code, no data
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        if not self._token_ok(query):
            return self._error(403, "missing or wrong token: open the URL `sarm explore` printed")
        cat = self.server.catalog
        if path == "/api/episodes":  # ?format=columns: {"columns": {key: [...]}}, smaller for 10^4 episodes
            if query.get("format") == ["columns"]:
                extra = json.dumps({"fps": cat.ds.fps, "cameras": cat.ds.camera_keys})
                body = f'{{"columns": {cat.episode_columns_json()}, {extra[1:]}'
                return self._send(200, body.encode(), "application/json")
            return self._json({"episodes": cat.episodes(), "fps": cat.ds.fps, "cameras": cat.ds.camera_keys})
        if m := re.fullmatch(r"/api/episode/(\d+)", path):
            try:
                return self._json(cat.episode(int(m[1])))
            except KeyError as err:
                return self._error(404, str(err.args[0]))
        if m := re.fullmatch(r"/api/frame/(\d+)", path):  # a decoded frame, for codecs the browser lacks
            return frame_route(self, cat, int(m[1]), query)
        if path.startswith("/files/"):
            rel = path.removeprefix("/files/")
            if rel in ("@progress", "@weights"):
                file = cat.files[rel[1:]]
                return self._file(file) if file is not None else self._error(404, f"no {rel[1:]} file given")
            file = safe_path(cat.root, rel)
            return self._file(file) if file is not None else self._error(404, "no such file in the dataset")
        return self._error(404, "not found")

    do_HEAD = do_GET

    def _static(self, name: str) -> None:
        file = safe_path(STATIC, name)
        if file is None:
            return self._error(404, "no such page asset")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".js":
            kind = "text/javascript"
        self._send(200, file.read_bytes(), f"{kind}; charset=utf-8" if kind.startswith("text") else kind)

    def _write(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if not self._write_ok(query):
            return self._error(403, "write refused: needs the token, this server's Host and Origin")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = unquote(urlsplit(self.path).path)
        for pattern, handler in _WRITE_ROUTES.items():  # each write route: (handler, match, body) -> None
            if m := re.fullmatch(pattern, path):
                return handler(self, m, body)
        return self._error(404, "no such write route")

    do_POST = do_PUT = do_DELETE = _write


# regex of the URL path -> handler(request handler, match, request body bytes); filled in by the
# write features (editing, curation exports), each checked by `_write_ok` before it runs
_WRITE_ROUTES: dict = {
    r"/api/episode/(\d+)/validate": edit.validate_route,
    r"/api/episode/(\d+)/save": edit.save_route,
    r"/api/episode/(\d+)/export": edit.export_route,
    r"/api/curation(/download)?": curation_route,
}
