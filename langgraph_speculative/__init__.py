"""Speculative actions for LangGraph: guess what a slow node will return,
run the graph ahead on forks of the state, adopt the work when the guess is
right. Nothing committed ever differs from a sequential run.
"""

from importlib import metadata as _metadata

from ._adaptive_policy import AdaptivePolicy
from ._budget import set_process_budget
from ._compile import speculate
from ._context import BranchStop, SpeculationInfo, speculation_info
from ._functional import speculate_tasks
from ._graph import SpeculativeCompiledGraph
from ._lossy import LossyNode
from ._maintenance import adelete_branch_threads, delete_branch_threads
from ._node import SpeculativeNode
from ._policy import Guess, SpeculationPolicy
from ._report import NodeStats, SpeculationReport

try:
    __version__ = _metadata.version("langgraph-speculative")
    """The installed distribution's version (from its metadata)."""
except _metadata.PackageNotFoundError:  # a checkout used without installing it
    __version__ = "0+unknown"

__all__ = (
    "__version__",
    "AdaptivePolicy",
    "BranchStop",
    "Guess",
    "LossyNode",
    "NodeStats",
    "SpeculationInfo",
    "SpeculationPolicy",
    "SpeculationReport",
    "SpeculativeCompiledGraph",
    "SpeculativeNode",
    "adelete_branch_threads",
    "delete_branch_threads",
    "set_process_budget",
    "speculate",
    "speculate_tasks",
    "speculation_info",
)
