"""Does a node call `interrupt()`? Read from its code, before anything runs.

A node that asks a person (LangGraph's `interrupt()`, `HumanInTheLoopMiddleware`) is a gate: a
branch must stop before it, and a guess of its result would skip the approval. The check reads
the node's function and what it calls in user code (nested functions, module functions it names,
methods of the object it is bound to), a few levels deep. It errs on the side of a gate: any
function that names `interrupt` counts. A node that interrupts in a way this cannot see is
caught the first time it does so on the main run (the session then treats it as a gate).
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda, RunnableSequence

__all__ = ("calls_interrupt",)

_LIBRARIES = ("langgraph.", "langchain_core.", "langsmith.", "pydantic", "typing", "asyncio", "builtins")
_MAX_DEPTH = 4


def calls_interrupt(node: Any) -> bool:
    """True when `node` (a function, method or Runnable) may call `interrupt()`."""
    return _scan(node, 0, set())


def _functions(obj: Any) -> list[Any]:
    """The Python functions behind `obj`."""
    if isinstance(obj, functools.partial):
        return [obj.func]
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        return [obj]
    if isinstance(obj, RunnableSequence):
        return list(obj.steps)
    if isinstance(obj, Runnable):
        found = [
            getattr(obj, a)
            for a in ("func", "afunc", "coroutine", "action", "bound")
            if getattr(obj, a, None)
        ]
        if isinstance(obj, RunnableLambda) or found:
            return found
        return []
    call = vars(type(obj)).get("__call__") if callable(obj) else None
    if isinstance(call, types.FunctionType):
        return [types.MethodType(call, obj)]
    return []


def _user_code(fn: Any) -> bool:
    module = getattr(fn, "__module__", "") or ""
    return not module.startswith(_LIBRARIES) or module.startswith("langgraph_speculative")


def _scan(obj: Any, depth: int, seen: set[int]) -> bool:
    if depth > _MAX_DEPTH or id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        return _scan_function(obj, depth, seen)
    return any(_scan(f, depth + 1, seen) for f in _functions(obj))


def _scan_function(fn: Any, depth: int, seen: set[int]) -> bool:
    owner = getattr(fn, "__self__", None)
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    if _names_interrupt(code):
        return True
    if not _user_code(func) and getattr(func, "__module__", "").startswith(("langgraph.", "langchain_core.")):
        return False
    globals_ = getattr(func, "__globals__", {})
    for name in _all_names(code):
        target = globals_.get(name)
        if target is None and owner is not None:
            target = getattr(type(owner), name, None)
            if isinstance(target, types.FunctionType):
                target = types.MethodType(target, owner)
        if isinstance(target, (types.FunctionType, types.MethodType)) and _user_code(target):
            if _scan(target, depth + 1, seen):
                return True
    for cell in getattr(func, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if (callable(value) or isinstance(value, Runnable)) and not inspect.isclass(value):
            if _scan(value, depth + 1, seen):
                return True
    return False


def _all_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


def _names_interrupt(code: types.CodeType) -> bool:
    return "interrupt" in _all_names(code)
