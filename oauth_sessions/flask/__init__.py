"""The Flask way in: the extension, its blueprints, the host adapter, resource helper and CLI."""
