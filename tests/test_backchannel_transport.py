"""The back-channel POST itself: form-encoded, never follows a redirect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from oauth_sessions.backchannel import post_form


class Recorder(BaseHTTPRequestHandler):
    hits: list[tuple[str, str, dict[str, list[str]]]] = []
    status = 200
    location = ""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = parse_qs(self.rfile.read(length).decode())
        Recorder.hits.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(Recorder.status if self.path == "/logout" else 200)
        if Recorder.location and self.path == "/logout":
            self.send_header("Location", Recorder.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Recorder.hits, Recorder.status, Recorder.location = [], 200, ""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_posts_the_token_form_encoded(receiver: str) -> None:
    assert post_form(receiver + "/logout", "header.payload.sig", timeout=2) == 200
    assert Recorder.hits == [("/logout", "application/x-www-form-urlencoded",
                              {"logout_token": ["header.payload.sig"]})]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_reported_not_followed(receiver: str, status: int) -> None:
    Recorder.status, Recorder.location = status, receiver + "/elsewhere"
    assert post_form(receiver + "/logout", "t", timeout=2) == status
    assert [hit[0] for hit in Recorder.hits] == ["/logout"]


def test_a_server_error_status_is_returned_for_the_retry_logic(receiver: str) -> None:
    Recorder.status = 503
    assert post_form(receiver + "/logout", "t", timeout=2) == 503
