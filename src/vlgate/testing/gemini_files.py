"""Gemini's Files API on the emulator: what a batch job's input and output files go through.

Endpoints (``x-goog-api-key`` or ``?key=`` as on the live endpoints):

* ``POST /upload/v1beta/files`` — the resumable upload as the Gemini API does it: a ``start``
  request (headers ``X-Goog-Upload-Protocol: resumable``, ``X-Goog-Upload-Command: start``,
  ``X-Goog-Upload-Header-Content-Length``, ``X-Goog-Upload-Header-Content-Type``; body
  ``{"file": {"displayName"}}``) answers an ``X-Goog-Upload-URL``; the bytes go there with
  ``X-Goog-Upload-Command: upload, finalize`` and ``X-Goog-Upload-Offset: 0``, which answers
  ``{"file": {name: "files/...", mimeType, sizeBytes, state: "ACTIVE", uri, ...}}``.
* ``GET /v1beta/files/{id}`` — the file's metadata.
* ``GET /download/v1beta/files/{id}:download?alt=media`` — its bytes (a batch's responses file).

Uploads are capped at :data:`MAX_FILE_BYTES` (the emulator's request-size limit, far below the
real 2 GB).
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .records import RecordedRequest
from .wire import dumps, error_body

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["MAX_FILE_BYTES", "GeminiFile", "GeminiFiles", "add_routes", "gemini_files"]

MAX_FILE_BYTES = 80 * 1024 * 1024


@dataclass
class GeminiFile:
    """One stored file."""

    id: str
    display_name: str
    mime_type: str
    data: bytes
    created: float

    def view(self, origin: str) -> dict[str, Any]:
        """The ``File`` resource as the API shows it."""
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created + 48 * 3600))
        return {
            "name": f"files/{self.id}",
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": t,
            "updateTime": t,
            "expirationTime": expires,
            "uri": f"{origin}/v1beta/files/{self.id}",
            "state": "ACTIVE",
            "source": "UPLOADED",
        }


class GeminiFiles:
    """The files of one emulator and the uploads in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: dict[str, GeminiFile] = {}
        self._sessions: dict[str, tuple[str, str, int]] = {}
        self.uploads = 0
        """Files uploaded (finalised) so far."""

    def add(
        self,
        data: bytes,
        *,
        display_name: str = "",
        mime_type: str = "application/jsonl",
        file_id: str | None = None,
    ) -> GeminiFile:
        """Store ``data`` as a file (a batch's responses file is made this way)."""
        file = GeminiFile(
            file_id or uuid.uuid4().hex[:16], display_name, mime_type, data, time.time()
        )
        with self._lock:
            self.files[file.id] = file
        return file

    def get(self, name: str) -> GeminiFile | None:
        """The file named ``files/{id}`` (or ``{id}``)."""
        return self.files.get(name.removeprefix("files/"))


_STORES: weakref.WeakKeyDictionary[Emulator, GeminiFiles] = weakref.WeakKeyDictionary()


def gemini_files(emu: Emulator) -> GeminiFiles:
    """The Files API store of ``emu`` (created on first use)."""
    store = _STORES.get(emu)
    if store is None:
        store = _STORES[emu] = GeminiFiles()
    return store


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class _Http:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = gemini_files(emu)

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        return self.emu._received(request, "gemini", body)

    def _error(
        self, rec: RecordedRequest, status: int, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        rec.status, rec.error = status, message
        return web.Response(
            status=status,
            body=dumps(error_body("gemini", status, message)),
            content_type="application/json",
            headers=headers,
        )

    def _ok(
        self, rec: RecordedRequest, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        rec.status = 200
        return web.Response(
            status=200, body=dumps(body), content_type="application/json", headers=headers
        )

    async def upload(self, request: web.Request) -> web.Response:
        raw = await request.read()
        command = request.headers.get("X-Goog-Upload-Command", "").replace(" ", "").lower()
        upload_id = request.query.get("upload_id")
        rec = self._record(request, None if upload_id else _json_or_none(raw))
        problem = self.emu._auth(request, "gemini", "gemini")
        if problem is not None:
            return self._error(rec, problem.status, problem.message)
        if upload_id is None:
            if request.headers.get("X-Goog-Upload-Protocol") != "resumable" or command != "start":
                return self._error(
                    rec,
                    400,
                    "Upload requests must use X-Goog-Upload-Protocol: resumable "
                    "and X-Goog-Upload-Command: start",
                )
            try:
                size = int(request.headers.get("X-Goog-Upload-Header-Content-Length", ""))
            except ValueError:
                return self._error(rec, 400, "X-Goog-Upload-Header-Content-Length is required")
            if size > MAX_FILE_BYTES:
                return self._error(rec, 400, f"File size {size} exceeds the limit.")
            meta = rec.body.get("file") if isinstance(rec.body, dict) else None
            name = str((meta or {}).get("displayName") or (meta or {}).get("display_name") or "")
            mime = request.headers.get("X-Goog-Upload-Header-Content-Type", "")
            sid = uuid.uuid4().hex
            with self.store._lock:
                self.store._sessions[sid] = (name, mime or "application/octet-stream", size)
            url = (
                f"{_origin(request)}/upload/v1beta/files?upload_id={sid}&upload_protocol=resumable"
            )
            return self._ok(rec, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
        with self.store._lock:
            session = self.store._sessions.get(upload_id)
        if session is None:
            return self._error(rec, 404, "Upload session not found.")
        if "upload" not in command.split(",") or "finalize" not in command.split(","):
            return self._error(rec, 400, "Only single-chunk 'upload, finalize' is emulated.")
        if request.headers.get("X-Goog-Upload-Offset", "0") != "0":
            return self._error(rec, 400, "X-Goog-Upload-Offset must be 0")
        name, mime, size = session
        if len(raw) != size:
            return self._error(
                rec, 400, f"Uploaded {len(raw)} bytes; the start request announced {size}."
            )
        with self.store._lock:
            self.store._sessions.pop(upload_id, None)
            self.store.uploads += 1
        file = self.store.add(raw, display_name=name, mime_type=mime)
        return self._ok(
            rec, {"file": file.view(_origin(request))}, {"X-Goog-Upload-Status": "final"}
        )

    async def metadata(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        problem = self.emu._auth(request, "gemini", "gemini")
        if problem is not None:
            return self._error(rec, problem.status, problem.message)
        file = self.store.get(request.match_info["file_id"])
        if file is None:
            return self._error(
                rec, 403, "You do not have permission to access the File or it may not exist."
            )
        return self._ok(rec, file.view(_origin(request)))

    async def download(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        problem = self.emu._auth(request, "gemini", "gemini")
        if problem is not None:
            return self._error(rec, problem.status, problem.message)
        target = request.match_info["target"]
        file_id, _, op = target.partition(":")
        file = self.store.get(file_id)
        if file is None or op != "download":
            return self._error(rec, 404, f"File files/{file_id} not found.")
        rec.status = 200
        return web.Response(status=200, body=file.data, content_type="application/octet-stream")


def _json_or_none(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def add_routes(app: web.Application, emu: Emulator) -> None:
    """Serve the Files API endpoints of ``emu`` on ``app``."""
    h = _Http(emu)
    app.router.add_post("/upload/v1beta/files", h.upload)
    app.router.add_get("/v1beta/files/{file_id}", h.metadata)
    app.router.add_get("/download/v1beta/files/{target}", h.download)
