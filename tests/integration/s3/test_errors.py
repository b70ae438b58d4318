"""Translation of AWS error answers into the product's errors (no server needed)."""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError
from ccstate.backends import aws
from ccstate.service import errors


def client_error(code: str, status: int, message: str = "no") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )


def test_disabled_kms_key_names_key_and_the_fix() -> None:
    translated = aws.translate(
        client_error("KMS.DisabledException", 400, "key is disabled"),
        what="s3://b/k",
        iam_action="s3:PutObject",
        caller="arn:aws:iam::1:user/bob",
        kms_key="arn:aws:kms:us-east-1:1:key/abc",
    )
    assert isinstance(translated, errors.AccessDenied)
    assert "arn:aws:kms:us-east-1:1:key/abc" in str(translated)
    assert "arn:aws:iam::1:user/bob" in str(translated)
    assert "enable it" in translated.next_step


def test_expired_token_says_to_refresh() -> None:
    translated = aws.translate(
        client_error("ExpiredToken", 400), what="s3://b/k", iam_action="s3:GetObject"
    )
    assert isinstance(translated, errors.AccessDenied)
    assert "refresh" in translated.next_step


def test_missing_credentials_say_how_to_configure_them() -> None:
    translated = aws.translate(NoCredentialsError(), what="s3://b", iam_action="s3:ListBucket")
    assert isinstance(translated, errors.AccessDenied)
    assert "AWS_PROFILE" in translated.next_step


def test_only_throttling_5xx_and_races_are_retried() -> None:
    assert aws.is_retryable(client_error("SlowDown", 503))
    assert aws.is_retryable(client_error("ThrottlingException", 400))
    assert aws.is_retryable(client_error("InternalError", 500))
    assert aws.is_retryable(client_error("ConditionalRequestConflict", 409))
    assert not aws.is_retryable(client_error("PreconditionFailed", 412))
    assert not aws.is_retryable(client_error("AccessDenied", 403))
    assert not aws.is_retryable(client_error("ValidationException", 400))
