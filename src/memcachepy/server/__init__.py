"""The trio server: listeners, the connection loop, UDP, TLS, signals and the service side."""
