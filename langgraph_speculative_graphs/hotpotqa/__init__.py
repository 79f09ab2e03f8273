"""ReAct on HotpotQA: speculate Wikipedia's answer while the real call is in flight.

Data: HotpotQA (CC BY-SA 4.0) and Reflexion's recorded runs (MIT); see data/LICENSE.md.
"""

from ._chat import ChatActionSpeculator
from ._combined import CombinedActionSpeculator
from ._graph import ReActState, ReplayReAct, initial_state, make_graph
from ._speculator import ActionSpeculator
from ._wiki import LocalWiki, RecordedWiki, WikipediaAPI, WikiSession

__all__ = (
    "ActionSpeculator",
    "ChatActionSpeculator",
    "CombinedActionSpeculator",
    "LocalWiki",
    "ReActState",
    "RecordedWiki",
    "ReplayReAct",
    "WikiSession",
    "WikipediaAPI",
    "initial_state",
    "make_graph",
)
