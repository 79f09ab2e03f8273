"""Chess self-play with speculative actions (the paper's showcase).

While the player to move thinks, a speculator guesses its move (top-k) and the
other player starts thinking about its reply to each guess on a branch.
"""

from ._graph import ChessState, make_graph, served_graph
from ._players import Players

__all__ = ("ChessState", "Players", "make_graph", "served_graph")
