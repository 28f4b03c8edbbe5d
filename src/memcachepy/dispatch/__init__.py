"""Joins protocol events to store operations and builds the reply bytes, per protocol."""
