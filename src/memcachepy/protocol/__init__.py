"""Sans-I/O protocol code: bytes in, events out, replies as bytes. No sockets, no store."""
