"""The drift tests' sandbox world: a sandbox, the real Cloud Control client, a store on disk."""

from tests.integration.drift.conftest import aws, sandbox, world  # noqa: F401
