"""The offline speculator of the ReAct agent's next action, and of the observation it gets.

Next action: `_features.candidates` proposes Search, Lookup and Finish actions
from what the agent has seen (the question, its earlier thoughts, actions and
observations), and `_ranker.Ranker` orders them by log P(tool) + log P(argument
| tool) with weights learned from recorded runs (`data/action_weights.json`,
fitted on the 50 dev runs by `scripts/hotpotqa_fit_speculator.py`, which also
records the rule families an inner cross-validation switched off). Nothing
here reads question ids, answers or supporting-fact labels.

Observation: what the local index (a stand-in for a fast, possibly stale
mirror of Wikipedia) answers for the action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cv import restrict_candidates
from ._features import candidates
from ._ranker import Ranker, load_model
from ._wiki import LocalWiki, WikiSession

__all__ = ("ActionSpeculator",)

Step = dict[str, Any]  # thought, tool, arg, observation


class ActionSpeculator:
    """Ranked guesses of the next ReAct action, and of the observation it gets.

    `weights`: a mapping of feature weights, a path to a weights JSON file, or
    None for the shipped weights. `off`: rule families (`_cv.FAMILIES`) left
    out; by default those the weights file switches off (none for a mapping).
    `wiki`: the local index used for guessed observations (built on first use
    when not given).
    """

    def __init__(
        self,
        wiki: LocalWiki | None = None,
        weights: Mapping[str, float] | str | None = None,
        off: tuple[str, ...] | None = None,
    ) -> None:
        self._wiki = wiki
        file_off: tuple[str, ...] = ()
        if isinstance(weights, Mapping):
            loaded = dict(weights)
        else:
            loaded, file_off = load_model(weights)
        self.ranker = Ranker(loaded)
        self.off = tuple(file_off if off is None else off)
        restrict_candidates((), (), self.off)  # unknown family names fail here, not at the first guess

    @property
    def wiki(self) -> LocalWiki:
        """The local index that answers guessed observations."""
        if self._wiki is None:
            self._wiki = LocalWiki()
        return self._wiki

    def guess(self, question: str, steps: list[Step], k: int = 3) -> list[tuple[str, str]]:
        """The k most likely next actions `(tool, arg)`, best first."""
        tools, options = candidates(question, steps)
        kept_tools, kept = restrict_candidates(list(tools.items()), list(options.items()), self.off)
        return self.ranker.rank(kept_tools, kept, k)

    def observation(self, tool: str, arg: str, session: WikiSession | None = None) -> str:
        """What the local index answers for `tool[arg]` (Lookup needs the episode's session)."""
        s = session if session is not None else WikiSession(self.wiki)
        return s.observe(tool, arg)
