"""Cloud Control's errors: API exceptions (synchronous, HTTP 400) and handler error codes
(asynchronous, in a FAILED ProgressEvent's ``ErrorCode``)."""

from __future__ import annotations


class ApiError(Exception):
    """An error the API returns synchronously as ``{"__type": code, "message": ...}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def not_found(type_name: str, identifier: str) -> ApiError:
    return ApiError(
        "ResourceNotFoundException",
        f"{type_name} with identifier '{identifier}' was not found.",
    )


class HandlerError(Exception):
    """A resource handler failure; ``error_code`` is one of Cloud Control's HandlerErrorCode."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


# Substrings of AWS service error codes, in order, and the handler error code they mean.
_SERVICE_CODE_MAP: tuple[tuple[str, str], ...] = (
    # Credentials refused: before "Invalid", so InvalidClientTokenId is not an invalid request.
    ("InvalidClientTokenId", "AccessDenied"),
    ("InvalidAccessKeyId", "AccessDenied"),
    ("UnrecognizedClient", "AccessDenied"),
    ("SignatureDoesNotMatch", "AccessDenied"),
    ("ExpiredToken", "AccessDenied"),
    ("AuthFailure", "AccessDenied"),
    ("Unauthorized", "AccessDenied"),
    ("Forbidden", "AccessDenied"),
    ("AlreadyExists", "AlreadyExists"),
    ("AlreadyOwnedByYou", "AlreadyExists"),
    ("ResourceExists", "AlreadyExists"),
    ("Duplicate", "AlreadyExists"),
    ("ResourceInUse", "ResourceConflict"),
    ("Conflict", "ResourceConflict"),
    ("NotEmpty", "ResourceConflict"),
    ("DependencyViolation", "ResourceConflict"),
    ("NotFound", "NotFound"),
    ("NoSuch", "NotFound"),
    ("NonExistent", "NotFound"),
    ("AccessDenied", "AccessDenied"),
    ("Throttl", "Throttling"),
    ("LimitExceeded", "ServiceLimitExceeded"),
    ("Invalid", "InvalidRequest"),
    ("Validation", "InvalidRequest"),
    ("Malformed", "InvalidRequest"),
)


def handler_error_code(service_code: str) -> str:
    for fragment, code in _SERVICE_CODE_MAP:
        if fragment.lower() in service_code.lower():
            return code
    return "GeneralServiceException"
