"""The demo provider. ``flask --app demo_server …`` finds :func:`create_app` here."""

from .app import create_app as create_app
