"""Authentication: SASL PLAIN (-S) and the ASCII authfile (-Y)."""
