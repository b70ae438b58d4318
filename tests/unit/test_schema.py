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
