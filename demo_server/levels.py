"""Assurance levels in plain words, for the pages people read.

The codes (``aal1``, ``aal2``, ``aal3``, NIST SP 800-63B) stay on the developer pages, in the
tokens and in the API; a person is told how they signed in instead.
"""

from __future__ import annotations

from oauth_sessions import Aal

LEVEL_WORDS: dict[Aal, str] = {
    Aal.AAL1: "signed in with password",
    Aal.AAL2: "verified with your authenticator app",
    Aal.AAL3: "verified with a hardware security key",
}


def describe_level(aal: Aal | str, *, capital: bool = False) -> str:
    """How a sign-in was made, e.g. "signed in with password" for ``aal1``."""
    words = LEVEL_WORDS[Aal(aal)]
    return words[:1].upper() + words[1:] if capital else words
