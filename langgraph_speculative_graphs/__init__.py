"""Ready-made speculative graphs for the paper's settings.

Each is a `make_graph(...)` factory returning an uncompiled `StateGraph`; no
model or engine is built at import.
"""
