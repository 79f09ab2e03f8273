"""Speculative actions for LangGraph: guess what a slow node will return,
run the graph ahead on forks of the state, adopt the work when the guess is
right. Nothing committed ever differs from a sequential run.

Two tools outside that promise live in modules of their own: `langgraph_speculative.lossy`
(`LossyNode`, last-write-wins for live systems) and `langgraph_speculative.maintenance`
(deleting branch threads an older version left in a saver).
"""

from importlib import metadata as _metadata

from ._adaptive_policy import AdaptivePolicy
from ._budget import set_process_budget
from ._compile import SpeculativeStateGraph, speculate
from ._context import BranchStop, SpeculationInfo, speculation_info
from ._functional import speculate_tasks
from ._graph import SpeculativeCompiledGraph
from ._keys import default_key, default_match
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
    "NodeStats",
    "SpeculationInfo",
    "SpeculationPolicy",
    "SpeculationReport",
    "SpeculativeCompiledGraph",
    "SpeculativeNode",
    "SpeculativeStateGraph",
    "default_key",
    "default_match",
    "set_process_budget",
    "speculate",
    "speculate_tasks",
    "speculation_info",
)
