"""Speculative actions for LangGraph: guess what a slow node will return,
run the graph ahead on forks of the state, adopt the work when the guess is
right. Nothing committed ever differs from a sequential run.
"""

from ._compile import speculate
from ._lossy import LossyNode
from ._node import SpeculativeNode
from ._policy import Guess, SpeculationPolicy
from ._report import SpeculationReport

__all__ = ("Guess", "LossyNode", "SpeculationPolicy", "SpeculationReport", "SpeculativeNode", "speculate")
