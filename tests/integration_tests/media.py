"""Media for the live vision tests: PNG images and a local HTTP server for them.

The rig has no internet, and vLLM fetches image URLs itself: a URL in a test must
point at `image_server()`, a thread in the test process that the vLLM server (on
the same host) fetches from. langchain-tests' standard image tests use a fixed
GitHub URL (`STANDARD_IMAGE_URL`); `LocalMirror` maps that URL to the local server
in the request bodies, and `fetch_standard_image` answers the suite's own
download of it.
"""

from __future__ import annotations

import struct
import threading
import zlib
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import httpx2

STANDARD_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/"
    "4d11d08b6b0e210bd456943f7a22febbd168b543/src/images/agentic-rag-output.png"
)
"""The image langchain-tests' standard image tests download and send."""


def png_bytes(width: int = 32, height: int = 32, rgb: tuple = (200, 30, 30)) -> bytes:
    """A one-colour RGB PNG, written with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


class ImageServer:
    """Serves `png_bytes()` images over HTTP on 127.0.0.1 (daemon thread)."""

    def __init__(self) -> None:
        images = {
            "/red.png": png_bytes(),
            "/blue.png": png_bytes(48, 24, (20, 40, 220)),
            "/agentic-rag-output.png": png_bytes(64, 40, (90, 160, 60)),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = images.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.images = images
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        """The URL of one of `images` (e.g. "/red.png")."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


@cache
def image_server() -> ImageServer:
    """The session's image server, started on first use."""
    return ImageServer()


class LocalMirror(httpx2.HTTPTransport):
    """An HTTP transport that points `STANDARD_IMAGE_URL` at `image_server()`.

    Only the URL inside the JSON body changes: the vLLM server still fetches the
    image over HTTP, from the local mirror instead of GitHub.
    """

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        old = STANDARD_IMAGE_URL.encode()
        if old in request.content:
            new = image_server().url("/agentic-rag-output.png").encode()
            headers = [
                (k, v) for k, v in request.headers.raw if k.lower() != b"content-length"
            ]
            request = httpx2.Request(
                request.method,
                request.url,
                headers=headers,
                content=request.content.replace(old, new),
                extensions=request.extensions,
            )
        return super().handle_request(request)


def fetch_standard_image(url: str, **kwargs: Any) -> httpx.Response:
    """Stand-in for `httpx.get` in langchain-tests: the mirror's copy of its image."""
    assert url == STANDARD_IMAGE_URL, url
    image = image_server().images["/agentic-rag-output.png"]
    return httpx.Response(200, content=image, request=httpx.Request("GET", url))
