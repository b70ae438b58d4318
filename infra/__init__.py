"""The team backend's CloudFormation template, shipped as package data:
``ccstate bootstrap --print-template`` prints it."""

from importlib.resources import files

TEMPLATE_NAME = "state-backend.yaml"


def state_backend_template() -> str:
    return files(__name__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
