"""The aal order (NIST SP 800-63B levels) that every policy comparison relies on."""

from __future__ import annotations

import itertools

import pytest

from oauth_sessions.core.policy import effective_aal, required_aal
from oauth_sessions.core.types import Aal

LEVELS = [Aal.AAL1, Aal.AAL2, Aal.AAL3]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(LEVELS, LEVELS)))
def test_every_comparison_follows_the_level_number(a: Aal, b: Aal) -> None:
    ra, rb = int(a.value[-1]), int(b.value[-1])
    assert (a < b, a <= b, a > b, a >= b) == (ra < rb, ra <= rb, ra > rb, ra >= rb)
    assert max(a, b).rank == max(ra, rb) and min(a, b).rank == min(ra, rb)


def test_effective_aal_is_the_lower_and_required_the_highest() -> None:
    assert effective_aal(Aal.AAL2, Aal.AAL1) is Aal.AAL1
    assert effective_aal(Aal.AAL1, Aal.AAL3) is Aal.AAL1
    assert required_aal(["read"], scope_min_aal={}) is Aal.AAL1
    assert required_aal(["pay", "read"], scope_min_aal={"pay": Aal.AAL2}) is Aal.AAL2
    assert required_aal(["read"], scope_min_aal={}, client_min_aal=Aal.AAL3) is Aal.AAL3
    assert required_aal(["read"], scope_min_aal={}, audience_min_aal={"api": Aal.AAL2},
                        audiences=["api"]) is Aal.AAL2


def test_a_registered_resource_servers_minimum_joins_for_its_audience_only() -> None:
    """The registry is asked about each audience but the default one (the issuer names no
    resource server), once per audience; AUDIENCE_MIN_AAL still covers the issuer too."""
    asked: list[str] = []

    def registry(resource: str) -> Aal | None:
        asked.append(resource)
        return {"https://pay.test": Aal.AAL2}.get(resource)

    rule = {"scope_min_aal": {}, "resource_min_aal": registry, "default_audience": "https://id.test"}
    assert required_aal([], audiences=["https://pay.test", "https://pay.test"], **rule) is Aal.AAL2
    assert required_aal([], audiences=["https://api.test"], **rule) is Aal.AAL1
    assert required_aal([], audiences=["https://id.test"], **rule) is Aal.AAL1
    assert asked == ["https://pay.test", "https://api.test"]
    assert required_aal([], audiences=["https://id.test"], audience_min_aal={
        "https://id.test": Aal.AAL3}, **rule) is Aal.AAL3
