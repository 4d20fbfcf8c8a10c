"""Signed JWTs: keys, key sets with rotation, the JWS codec and the token profiles."""
