"""Scopes in plain words, for the consent page and the account pages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScopeText:
    title: str
    detail: str


SCOPE_TEXTS: dict[str, ScopeText] = {
    "openid": ScopeText("Know who you are",
                        "Sign you in with your account ID, and learn when and how you signed in."),
    "profile": ScopeText("See your basic profile",
                         "Your display name and profile details (this demo keeps none)."),
    "email": ScopeText("See your e-mail address", "The address you use for this account."),
    "offline_access": ScopeText(
        "Stay connected while you are away",
        "Keep working when you are not using the app. You can end this on \"Your sessions\"."),
    "payments": ScopeText(
        "Make payments for you",
        "Start payments from your account. This asks for a code from your authenticator app."),
}


def describe_scope(scope: str) -> ScopeText:
    """The plain-words text of a scope; an unknown scope is shown by its name."""
    return SCOPE_TEXTS.get(scope, ScopeText(f"Use the \u201c{scope}\u201d permission",
                                            "A permission this app defined."))
