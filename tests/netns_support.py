"""Separate app hosts for a test: network namespaces with veth pairs and their own addresses.

Each :class:`NetHost` is a network namespace of its own (``ip netns``) joined to the test's
namespace by a veth pair on a /30 of its own: the host side of the pair is the namespace's
gateway (where the test's PgBouncer listens), the other side is the app host's address. Names
and subnets are unique per run, so parallel runs do not clash, and everything is deleted on the
way out, failure or not (deleting a namespace deletes its end of the pair, and with it the other).

Making namespaces needs root (``CAP_SYS_ADMIN`` and ``CAP_NET_ADMIN``). Where the kernel refuses
them the test is skipped with the reason, except under ``CI=true``, which must run it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pytest

IP = "/usr/sbin/ip"


@dataclass(frozen=True)
class NetHost:
    namespace: str
    address: str  # the app host's own address, inside the namespace
    gateway: str  # the test namespace's end of the veth pair


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, text=True, timeout=15)


def _refused(reason: str) -> None:
    message = f"network namespaces unavailable here ({reason}); they need root"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " and CI=true requires them", pytrace=False)
    pytest.skip(message)


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """``count`` /30s in one random /24 of 10.0.0.0/8 that no interface here uses yet."""
    used = subprocess.run([IP, "-4", "-o", "addr", "show"], check=True, capture_output=True,
                          text=True, timeout=15).stdout
    for _ in range(50):
        prefix = f"10.{secrets.randbelow(150) + 100}.{secrets.randbelow(256)}."
        if f"inet {prefix}" not in used:
            return list(ipaddress.IPv4Network(prefix + "0/24").subnets(new_prefix=30))[:count]
    raise RuntimeError("no free 10.x.y.0/24 for the test's namespaces")


@contextmanager
def net_hosts(count: int) -> Iterator[list[NetHost]]:
    """``count`` namespaces, each with its own address, deleted afterwards."""
    if not os.access(IP, os.X_OK):
        _refused(f"{IP} not found (apt-get install iproute2)")
    tag = secrets.token_hex(3)
    made_ns: list[str] = []
    made_links: list[str] = []
    try:
        hosts = []
        for i, subnet in enumerate(_free_subnets(count)):
            gateway, address = (str(a) for a in list(subnet.hosts())[:2])
            ns, outer, inner = f"oauth-sessions-{tag}-{i}", f"os{tag}h{i}", f"os{tag}n{i}"
            try:
                _ip("netns", "add", ns)
            except subprocess.CalledProcessError as exc:
                _refused(exc.stderr.strip() or f"ip netns add exited {exc.returncode}")
            made_ns.append(ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            made_links.append(outer)
            _ip("link", "set", inner, "netns", ns)
            _ip("addr", "add", f"{gateway}/30", "dev", outer)
            _ip("link", "set", outer, "up")
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts.append(NetHost(ns, address, gateway))
        yield hosts
    finally:
        for ns in reversed(made_ns):
            _kill_leftovers(ns)
            subprocess.run([IP, "netns", "delete", ns], capture_output=True, timeout=15)
        for link in made_links:  # normally gone with its peer's namespace
            subprocess.run([IP, "link", "delete", link], capture_output=True, timeout=15)


def _kill_leftovers(ns: str) -> None:
    """Processes still running in a namespace this run made (only this run's servers)."""
    found = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True, timeout=15)
    for pid in found.stdout.split():
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@contextmanager
def serve_in(host: NetHost, argv: Sequence[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` inside ``host``'s namespace as its own process group; stopped afterwards."""
    proc = subprocess.Popen([IP, "netns", "exec", host.namespace, *argv], env=env,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
