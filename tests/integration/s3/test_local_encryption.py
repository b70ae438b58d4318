"""The local backend with the ``kms_key`` setting: state files are envelope-encrypted on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.config import load_settings
from ccstate.backends.factory import open_backend
from ccstate.service import errors
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore, serial_key

from tests.integration.s3.conftest import S3Setup

META = CommitMeta(principal=Principal(user="alice"), explanation="create")


def secret_bucket() -> ResourceChange:
    return ResourceChange(
        identifier="payroll-exports",
        resource_type="AWS::S3::Bucket",
        operation="create",
        properties_after={"BucketName": "payroll-exports"},
    )


async def test_local_state_is_encrypted_at_rest_with_kms(s3_setup: S3Setup, tmp_path: Path) -> None:
    root = tmp_path / "state"
    encrypted = load_settings({"kms_key": s3_setup.kms_key}, env={})
    backend = await open_backend(f"file://{root}", settings=encrypted)
    try:
        await backend.state_store().commit([secret_bucket()], META)
        assert backend.export_path is None  # no plaintext state.json beside the log
    finally:
        await backend.close()

    on_disk = (root / serial_key("default/log/", 1)).read_bytes()
    assert on_disk.startswith(b"CCENV") and b"payroll" not in on_disk
    assert not (root / "state.json").exists()

    reopened = await open_backend(f"file://{root}", settings=encrypted)
    try:
        assert "payroll-exports" in (await StateStore(reopened.objects).current()).resources
    finally:
        await reopened.close()

    plain = await open_backend(f"file://{root}", settings=load_settings(env={}))
    try:
        with pytest.raises(errors.StateCorrupt):
            await StateStore(plain.objects).current()
    finally:
        await plain.close()
