"""Lossy speculation (last-write-wins), for live systems where waiting is worse than a wrong step.

`LossyNode` applies the speculator's action at once and lets the actor's later decision overwrite
it. It is outside the library's lossless promise: what it commits can differ from a sequential
run, by design. Use it for tuning loops of a running system (see the ready-made CFS graph).
"""

from ._lossy import LossyNode

__all__ = ("LossyNode",)
