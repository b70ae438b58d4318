"""The directory a local backend URL names (``file:///abs``, ``file://~/p``, a plain path), without
the S3 side of ``backends.factory`` (which imports the settings model and the secret scanner):
the light read path of ``state list`` resolves its backend here too."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


def local_backend_path(url: str) -> Path | None:
    """The absolute directory of a local backend URL; None when ``url`` has another scheme.
    ``ValueError`` says what is wrong with a local URL."""
    url = url.strip()
    if not url:
        raise ValueError("it is empty")
    if "\x00" in url:
        raise ValueError("it contains NUL")
    if "://" not in url:
        return Path(url).expanduser().absolute()
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    if parts.query or parts.fragment:
        raise ValueError("file:// URLs take no '?options' or '#fragment'")
    path = unquote(parts.path)
    if parts.netloc.startswith("~"):
        return Path(parts.netloc + path).expanduser().absolute()
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"'{parts.netloc}' is a host name; use three slashes for an absolute path")
    if not path.startswith("/"):
        raise ValueError("the path is not absolute")
    return Path(path).absolute()
