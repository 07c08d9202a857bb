"""Environments: where model code runs."""

from rlm_async.environments.base import Environment, ExecResult, SubcallHandler, SubcallRequest
from rlm_async.environments.local import LocalEnvironment

__all__ = ["Environment", "ExecResult", "LocalEnvironment", "SubcallHandler", "SubcallRequest"]
