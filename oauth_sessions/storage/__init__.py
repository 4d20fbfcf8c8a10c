"""The ``auth`` schema: models, engines, migrations and the stores behind typed interfaces."""
