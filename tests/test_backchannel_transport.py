"""The back-channel POST itself: form-encoded, never follows a redirect."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from oauth_sessions.protocol import backchannel
from oauth_sessions.protocol.backchannel import post_form


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


def _fake_resolver(address: str) -> object:
    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET if ":" not in address else socket.AF_INET6, socket.SOCK_STREAM,
                 6, "", (address, 443))]
    return getaddrinfo


def _no_connection(*args: object, **kwargs: object) -> None:
    raise AssertionError("a refused receiver must not be connected to")


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1", "192.168.1.9",
                                     "fd00::1", "::ffff:10.0.0.1"])
def test_a_name_resolving_to_an_internal_address_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver(address))
    monkeypatch.setattr(backchannel._OPENER, "open", _no_connection)
    with pytest.raises(backchannel.BlockedAddress):
        post_form("https://rp.example/logout", "t", timeout=2)


def test_a_name_resolving_to_a_public_address_passes_the_check(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver("93.184.216.34"))
    backchannel.check_resolved_host("rp.example")  # no exception; nothing is connected to


def test_a_refused_receiver_is_given_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver("10.1.2.3"))
    monkeypatch.setattr(backchannel._OPENER, "open", _no_connection)
    sender = backchannel.BackchannelSender(attempts=3, backoff=0, timeout=1)
    delivery = backchannel.Delivery(uri="https://rp.example/logout", client_id="c",
                                    session_id=uuid.uuid4(), make_token=lambda: "t")
    assert sender._attempt(delivery) is None
    assert (delivery.attempts, sender.failed, sender.delivered) == (1, 1, 0)
