"""Rules of the provider that know no Flask, no SQL and no Authlib."""
