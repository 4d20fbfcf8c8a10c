"""``.ci/test-prerequisites`` (run by ``make test``): provision or name what the suite needs.

The script runs with a PATH of stand-ins (``id``, ``apt-get``, ``npm``, ``node``,
``pg_isready``) so each machine it meets (fresh, not root, under CI or not) can be made here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "test-prerequisites"
TOOLS = ("ls", "sort", "tail", "seq", "sleep", "cat", "chmod")


class Machine:
    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found is not None
            (self.bin / tool).symlink_to(found)
        self.chromium = root / "chromium"
        self.pgbouncer = root / "pgbouncer"
        self.apt_log = root / "apt.log"
        self.uid = 1000
        self.fake("pg_isready", "exit 0")
        self.fake("npm", "exit 0")
        self.fake("node", "exit 0")
        self.executable(self.pgbouncer)
        self.executable(self.chromium)

    @staticmethod
    def executable(path: Path, body: str = "exit 0") -> None:
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def fake(self, name: str, body: str) -> None:
        self.executable(self.bin / name, body)

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        self.fake("id", f"echo {self.uid}")
        base = {"PATH": str(self.bin), "CHROMIUM": str(self.chromium),
                "PGBOUNCER": str(self.pgbouncer), "HOME": os.environ.get("HOME", "/")}
        return subprocess.run(["/bin/bash", str(SCRIPT)], env={**base, **env},
                              capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_everything_present_says_nothing(machine: Machine) -> None:
    done = machine.run(CI="true")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_ci_not_root_without_chromium_stops_with_one_line(machine: Machine) -> None:
    machine.chromium.unlink()
    done = machine.run(CI="true")
    assert done.returncode == 1
    assert done.stderr == "chromium is missing (the browser tests): sudo apt-get install chromium\n"


def test_ci_not_root_without_npm_stops_with_one_line(machine: Machine) -> None:
    (machine.bin / "npm").unlink()
    done = machine.run(CI="true")
    assert done.returncode == 1
    assert done.stderr == ("npm is missing (the openid-client interoperability tests): "
                           "sudo apt-get install npm\n")


def test_ci_not_root_without_pgbouncer_stops_with_one_line(machine: Machine) -> None:
    machine.pgbouncer.unlink()
    done = machine.run(CI="true")
    assert done.returncode == 1
    assert done.stderr == ("pgbouncer is missing (the connection-pooler tests): "
                           "sudo apt-get install pgbouncer\n")


def test_root_installs_debians_chromium(machine: Machine) -> None:
    machine.chromium.unlink()
    machine.uid = 0
    machine.fake("apt-get", f'echo "$*" >> {machine.apt_log}\n'
                            f'[ "$6" = chromium ] && '
                            f'printf "#!/bin/sh\\n" > {machine.chromium} && chmod 755 {machine.chromium}\n'
                            "exit 0")
    done = machine.run(CI="true")
    assert done.returncode == 0, done.stderr
    lock = "-o DPkg::Lock::Timeout=300"
    assert machine.apt_log.read_text().splitlines() == [f"update -q {lock}",
                                                        f"install -y -q {lock} chromium"]
    assert done.stderr == "== installing Debian's chromium (needed by the test suite)\n"


def test_root_whose_install_fails_still_names_the_command(machine: Machine) -> None:
    machine.chromium.unlink()
    machine.uid = 0
    machine.fake("apt-get", "exit 100")
    done = machine.run(CI="true")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("chromium is missing (the browser tests): "
                                            "sudo apt-get install chromium")


def test_without_ci_a_missing_piece_is_a_note_and_the_suite_runs(machine: Machine) -> None:
    machine.chromium.unlink()
    (machine.bin / "node").unlink()
    done = machine.run()
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "note: chromium is missing, so the browser tests are skipped (sudo apt-get install chromium)",
        "note: npm is missing, so the openid-client interoperability tests are skipped "
        "(sudo apt-get install npm)",
    ]


def test_ci_with_postgresql_down_names_host_and_port(machine: Machine) -> None:
    machine.fake("pg_isready", "exit 2")
    done = machine.run(CI="true", PGPORT="5499")
    assert done.returncode == 1
    assert done.stderr == ("PostgreSQL is not reachable on 127.0.0.1:5499 (the PostgreSQL tests): "
                           "start it (sudo pg_ctlcluster <version> main start) or point "
                           "OAUTH_SESSIONS_TEST_DATABASE_URL at one\n")
    assert machine.run(PGPORT="5499").returncode == 0
    assert machine.run(OAUTH_SESSIONS_REQUIRE_POSTGRES="1", PGPORT="5499").returncode == 1
