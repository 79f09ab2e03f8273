"""ReAct on HotpotQA: speculate Wikipedia's answer while the real call is in flight.

Data: HotpotQA (CC BY-SA 4.0) and Reflexion's recorded runs (MIT); see data/LICENSE.md.
"""

from ._graph import ReActState, ReplayReAct, make_graph
from ._speculator import ActionSpeculator
from ._wiki import LocalWiki, RecordedWiki, WikipediaAPI, WikiSession

__all__ = (
    "ActionSpeculator",
    "LocalWiki",
    "ReActState",
    "RecordedWiki",
    "ReplayReAct",
    "WikiSession",
    "WikipediaAPI",
    "make_graph",
)
