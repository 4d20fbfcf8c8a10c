"""Alembic environment for the auth schema.

Run through :mod:`oauth_sessions.storage.migrate`, which hands over an open connection in
``config.attributes["connection"]``; there is no alembic.ini to keep in sync.
"""

from __future__ import annotations

from alembic import context

from oauth_sessions.storage.migrate import VERSION_TABLE, library_schema
from oauth_sessions.storage.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    version_table_schema=library_schema(connection),
    include_schemas=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
