"""Packages for the wheel: the product card fixes the top-level folders (service/, backends/,
mcp_server/, sandbox/, ccstate/); the wheel installs them under one import name, ``ccstate``, so
that ``ccstate.service`` is ``service/``. Everything else lives in pyproject.toml."""

from setuptools import find_packages, setup

FOLDERS = {
    "ccstate": "ccstate",
    "ccstate.service": "service",
    "ccstate.backends": "backends",
    "ccstate.mcp_server": "mcp_server",
    "ccstate.sandbox": "sandbox",
    # The CloudFormation template of the team backend, as package data, so that the wheel can
    # print it (`ccstate bootstrap --print-template`) and messages can point at it.
    "ccstate.infra": "infra",
}

packages: list[str] = []
for name, folder in FOLDERS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=FOLDERS)
