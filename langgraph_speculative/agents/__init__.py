"""Speculation for existing agents: `create_agent(..., middleware=[SpeculativeToolCalls(...)])`.

While the agent's model thinks, a speculator guesses the tool calls it will
make, and the read-only ones start at once; the tool step serves their results
when the guess was right. The transcript is the one the agent would have
written without the middleware. Needs LangChain 1.x:
`pip install 'langgraph-speculative[agents]'`.
"""

try:
    import langchain.agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on extras
    raise ImportError(
        "langgraph_speculative.agents needs LangChain 1.x (create_agent and its middleware): "
        "pip install 'langgraph-speculative[agents]'"
    ) from exc

from ._graph_level import model_call_speculator
from ._handoffs import handoff_speculator
from ._middleware import SpeculativeToolCalls
from ._model import model_speculator
from ._patterns import ToolPatternSpeculator

__all__ = (
    "SpeculativeToolCalls",
    "ToolPatternSpeculator",
    "handoff_speculator",
    "model_call_speculator",
    "model_speculator",
)
