"""Maintenance of checkpointers that older versions of the library wrote branch threads into.

Branches fork into in-memory savers of their own, so a current run leaves nothing in the user's
saver; these find and delete what an older version left (`langgraph-speculative branches` on the
command line).
"""

from ._maintenance import adelete_branch_threads, delete_branch_threads

__all__ = ("adelete_branch_threads", "delete_branch_threads")
