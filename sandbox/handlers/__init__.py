"""The registry of resource handlers: type name -> handler class."""

from __future__ import annotations

from sandbox.handlers.awslambda import FunctionHandler
from sandbox.handlers.base import Handler
from sandbox.handlers.dynamodb import TableHandler
from sandbox.handlers.ec2 import SecurityGroupHandler, VpcHandler
from sandbox.handlers.iam import RoleHandler
from sandbox.handlers.kms import KeyHandler
from sandbox.handlers.logs import LogGroupHandler
from sandbox.handlers.messaging import QueueHandler, TopicHandler
from sandbox.handlers.s3 import BucketHandler
from sandbox.handlers.secretsmanager import SecretHandler
from sandbox.handlers.ssm import ParameterHandler

HANDLERS: dict[str, type[Handler]] = {
    handler.type_name: handler
    for handler in (
        BucketHandler,
        TableHandler,
        QueueHandler,
        TopicHandler,
        RoleHandler,
        KeyHandler,
        LogGroupHandler,
        ParameterHandler,
        FunctionHandler,
        VpcHandler,
        SecurityGroupHandler,
        SecretHandler,
    )
}
