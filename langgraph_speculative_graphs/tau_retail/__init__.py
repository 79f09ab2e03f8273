"""tau-bench retail: a customer-service agent that pre-runs the read calls of its next turn.

Data: tau-bench's retail domain (MIT License, Copyright (c) 2024 Sierra; see data/LICENSE).
"""

from ._db import READ_TOOLS, WRITE_TOOLS, RetailDB, load_tasks, task_reward
from ._graph import ReplayAgent, ReplayUser, RetailState, make_graph
from ._speculator import CallSpeculator

__all__ = (
    "READ_TOOLS",
    "WRITE_TOOLS",
    "CallSpeculator",
    "ReplayAgent",
    "ReplayUser",
    "RetailDB",
    "RetailState",
    "load_tasks",
    "make_graph",
    "task_reward",
)
