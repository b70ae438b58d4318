"""ResourceSchema on real provider schemas shipped with cfn-lint."""

from __future__ import annotations

from ccstate.backends.schemas import bundled_schema_document
from ccstate.service.changes.schema import ResourceSchema


def schema(type_name: str) -> ResourceSchema:
    doc = bundled_schema_document(type_name)
    assert doc is not None
    return ResourceSchema.from_document(doc)


def test_bucket_identifiers_and_property_classes() -> None:
    bucket = schema("AWS::S3::Bucket")
    assert bucket.primary_identifier == ("/BucketName",)
    assert "/Arn" in bucket.read_only
    assert "/BucketName" in bucket.create_only
    assert bucket.tags_property == "/Tags"


def test_unordered_arrays_found_through_refs_maps_and_combinators() -> None:
    sg = schema("AWS::EC2::SecurityGroup")
    assert "/SecurityGroupIngress" in sg.unordered_arrays
    archive = schema("AWS::AccessAnalyzer::ArchiveRule")
    assert any(p.startswith("/Filter/*") for p in archive.unordered_arrays)
    hook = schema("AWS::CloudFormation::LambdaHook")
    assert any("TargetFilters" in p for p in hook.unordered_arrays)


def test_reading_cfn_lints_files_gives_what_its_public_api_gives(tmp_path, monkeypatch) -> None:
    """backends/schemas.py reads cfn-lint's data files directly (its public API costs 1.5 s of
    import); this pins that reading to the public API, so a new cfn-lint layout fails here."""
    from ccstate.backends.schemas import BUNDLED_REGION, bundled_type_names
    from cfnlint.schema.manager import ProviderSchemaManager

    monkeypatch.setenv("HOME", str(tmp_path))  # no `cfn-lint --update-specs` cache: the bundle
    manager = ProviderSchemaManager()
    ours = sorted(bundled_type_names())
    theirs = set(manager.get_resource_types(BUNDLED_REGION))
    assert len(ours) > 1000
    assert set(ours) <= theirs
    assert {t for t in theirs if not t.startswith(("AWS::Serverless::", "Module"))} <= set(ours)
    for type_name in [*ours[::97], "AWS::S3::Bucket", "AWS::EC2::SecurityGroup"]:
        expected = manager.get_resource_schema(BUNDLED_REGION, type_name).schema
        assert bundled_schema_document(type_name) == expected, type_name
