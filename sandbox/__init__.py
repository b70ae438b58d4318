"""The offline AWS: moto plus a Cloud Control API endpoint on one port of 127.0.0.1.

A test double for AWS, shipped so a newcomer can try everything offline; never the production
path. ``with Sandbox() as sb: os.environ.update(sb.env())``.
"""

from ccstate.sandbox.server import Sandbox

__all__ = ["Sandbox"]
