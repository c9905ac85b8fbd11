"""Fixtures of the attack tests: real servers and Redis (see tests/attacks/servers.py)."""

from tests.attacks.servers import server_factory  # noqa: F401 - pytest fixtures

