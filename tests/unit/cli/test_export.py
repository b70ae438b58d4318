"""The state.json exporter and reader: atomic, private, and precise about what is wrong."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from ccstate.backends.export import (
    parse_document,
    read_document,
    state_json_exporter,
    write_document,
)
from ccstate.service.errors import InvalidInput
from ccstate.service.state.model import StateDocument

SEED = Path("/work/shared/examples/seed-state.json")


def document(serial: int = 3) -> StateDocument:
    return StateDocument.model_validate(
        {
            "version": "1.0",
            "metadata": {
                "created": "2025-01-07T10:00:00Z",
                "last_updated": "2025-01-07T15:30:00Z",
                "serial": serial,
            },
            "resources": {
                "b": {
                    "resource_type": "AWS::S3::Bucket",
                    "identifier": "b",
                    "current_properties": {"BucketName": "b"},
                }
            },
        }
    )


async def test_exporter_writes_a_private_file_in_a_private_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "state.json"
    await state_json_exporter(target)(document())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert json.loads(target.read_text())["metadata"]["serial"] == 3


def test_rewrite_replaces_the_whole_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_document(target, document(1))
    write_document(target, document(2))
    assert json.loads(target.read_text())["metadata"]["serial"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_written_document_reads_back_equal(tmp_path: Path) -> None:
    target = write_document(tmp_path / "state.json", document())
    assert read_document(target) == document()


@pytest.mark.skipif(not SEED.exists(), reason="the seed example is not available")
def test_the_seed_example_parses_and_keeps_its_key_order(tmp_path: Path) -> None:
    doc = read_document(SEED)
    out = write_document(tmp_path / "state.json", doc)
    assert json.loads(out.read_text()) == json.loads(SEED.read_text())
    assert list(json.loads(out.read_text())) == ["version", "metadata", "resources", "stacks"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["metadata"].pop("created"), "metadata.created"),
        (lambda d: d["resources"]["b"].update(current_properties=[1]), "current_properties"),
        (lambda d: d.update(version="2.0"), "version"),
    ],
)
def test_invalid_document_error_names_the_field(edit, field: str) -> None:
    data = document().to_json_dict()
    edit(data)
    with pytest.raises(InvalidInput) as caught:
        parse_document(json.dumps(data), where="doc.json")
    assert field in caught.value.message
    assert "doc.json" in caught.value.message
    assert caught.value.next_step


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_document(tmp_path / "absent.json")
