"""The back-channel POST itself: form-encoded, never follows a redirect."""

from __future__ import annotations

import ipaddress
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from oauth_sessions.core.uris import is_public_address, validate_backchannel_logout_uri
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
    monkeypatch.setattr(backchannel.socket, "create_connection", _no_connection)
    with pytest.raises(backchannel.BlockedAddress):
        post_form("https://rp.example/logout", "t", timeout=2)


def test_a_name_resolving_to_a_public_address_passes_the_check(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver("93.184.216.34"))
    backchannel.check_resolved_host("rp.example")  # no exception; nothing is connected to


def test_a_refused_receiver_is_given_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver("10.1.2.3"))
    monkeypatch.setattr(backchannel.socket, "create_connection", _no_connection)
    sender = backchannel.BackchannelSender(attempts=3, backoff=0, timeout=1)
    delivery = backchannel.Delivery(uri="https://rp.example/logout", client_id="c",
                                    session_id=uuid.uuid4(), make_token=lambda: "t")
    assert sender._attempt(delivery) is None
    assert (delivery.attempts, sender.failed, sender.delivered) == (1, 1, 0)


EMBEDDED_INTERNAL = ["64:ff9b::a9fe:a9fe",    # NAT64 (RFC 6052) of 169.254.169.254
                     "64:ff9b:1::a00:5",      # local-use NAT64 (RFC 8215) of 10.0.0.5
                     "2002:7f00:1::",         # 6to4 (RFC 3056) of 127.0.0.1
                     "2002:a9fe:a9fe::1",     # 6to4 of the metadata address
                     "::127.0.0.1",           # IPv4-compatible (RFC 4291 2.5.5.1)
                     "::ffff:169.254.169.254"]


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL)
def test_issue15_item13_ipv4_inside_ipv6_is_judged_at_delivery(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """Issue 15 item 13: a name resolving to an IPv6 address that carries an internal IPv4
    address (Python calls several of them global) is refused before any connection."""
    monkeypatch.setattr(backchannel.socket, "getaddrinfo", _fake_resolver(address))
    monkeypatch.setattr(backchannel.socket, "create_connection", _no_connection)
    with pytest.raises(backchannel.BlockedAddress):
        post_form("https://rp.example/logout", "t", timeout=2)


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL)
def test_issue15_item13_ipv4_inside_ipv6_literals_are_refused_at_registration(address: str) -> None:
    """Issue 15 item 13, registration side: the same literals in a backchannel_logout_uri."""
    with pytest.raises(ValueError, match="internal address"):
        validate_backchannel_logout_uri(f"https://[{address}]/logout", allow_loopback_http=False)


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d822", "2002:5db8:d822::1",
                                     "2606:4700:4700::1111"])
def test_issue15_item13_ipv6_carrying_a_public_ipv4_still_passes(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))
    assert validate_backchannel_logout_uri(f"https://[{address}]/l", allow_loopback_http=False)


def test_issue15_item13_the_post_connects_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 13, second half: one resolution, and the connection goes to its answer
    (a rebinding name answering 127.0.0.1 the second time gets no second chance)."""
    answers = iter(["93.184.216.34", "127.0.0.1"])
    asked: list[str] = []
    connected: list[tuple[str, int]] = []

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 443))]

    def create_connection(address: tuple[str, int], *args: object, **kwargs: object) -> None:
        connected.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(backchannel.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(backchannel.socket, "create_connection", create_connection)
    with pytest.raises(ConnectionRefusedError):
        post_form("https://rp.example/logout", "t", timeout=2)
    assert asked == ["rp.example"] and connected == [("93.184.216.34", 443)]
