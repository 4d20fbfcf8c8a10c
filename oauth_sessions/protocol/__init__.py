"""The OAuth 2.1 / OpenID Connect endpoints' protocol logic, one module per endpoint or grant."""
