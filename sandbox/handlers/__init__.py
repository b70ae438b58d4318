"""The registry of resource handlers: type name -> handler class."""

from __future__ import annotations

from ccstate.sandbox.handlers.awslambda import FunctionHandler
from ccstate.sandbox.handlers.base import Handler
from ccstate.sandbox.handlers.dynamodb import TableHandler
from ccstate.sandbox.handlers.ec2 import SecurityGroupHandler, VpcHandler
from ccstate.sandbox.handlers.iam import RoleHandler
from ccstate.sandbox.handlers.kms import KeyHandler
from ccstate.sandbox.handlers.logs import LogGroupHandler
from ccstate.sandbox.handlers.messaging import QueueHandler, TopicHandler
from ccstate.sandbox.handlers.s3 import BucketHandler
from ccstate.sandbox.handlers.secretsmanager import SecretHandler
from ccstate.sandbox.handlers.ssm import ParameterHandler

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
