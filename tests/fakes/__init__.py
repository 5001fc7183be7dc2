"""Fake platform API servers on 127.0.0.1 for the tests: each implements the documented endpoints
the adapters call and records what it received."""
