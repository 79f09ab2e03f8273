"""pytest plugin: run LangGraph's own test suite with every `StateGraph` speculative.

Loaded by `scripts/upstream/suite.py` (`-p lgs_upstream_plugin --lgs-mode=...`). It patches
`StateGraph.compile` so that every graph a test builds (its own, `create_react_agent`'s, a
subgraph's) is compiled as `speculate(builder, {every node: speculator}).compile(...)` with the
same arguments, and writes every test's outcome to a JSON file the runner compares across modes.

Modes:

- `plain`: LangGraph as it is (the reference); records which tests build graphs.
- `none`: every node speculative, speculators that guess nothing.
- `wrong`: speculators that guess a wrong update (the node's input echoed back as its update), so
  branches run ahead on states the main run never has and are cancelled.
- `right`: speculators that guess the update the node returned last time for an equal input
  (remembered across the test's runs, main run and branches), so branches are adopted.
- `plain-slow`: LangGraph as it is, every node's function slowed by 20 ms (the reference of `slow`).
- `slow`: every node slowed by 20 ms, guesses remembered when there are some and wrong otherwise,
  so branches form, launch the next nodes early and are adopted or cancelled mid-flight.

Only public APIs of langgraph-speculative (`speculate`) are used. Slowing and remembering wrap the
function inside a node's runnable (a shallow copy of it, so the test's own builder is unchanged).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import functools
import inspect
import json
import os
import re
import sys
import threading
import time
from typing import Any

import pytest
from langgraph.graph import StateGraph

MODES = ("plain", "none", "wrong", "right", "plain-slow", "slow")
SLOW_S = 0.02

_ORIGINAL_COMPILE = StateGraph.compile
_inside = contextvars.ContextVar("lgs_upstream_inside", default=False)


class _State:
    """What the plugin knows during one pytest session."""

    def __init__(self) -> None:
        self.mode = "plain"
        self.out: str | None = None
        self.refusals: list[re.Pattern[str]] = []
        self.current: str | None = None  # node id of the running test
        self.results: dict[str, dict[str, Any]] = {}
        self.selected: list[str] = []  # node ids collected and kept
        self.compiled: set[str] = set()  # tests that compiled a StateGraph
        self.compile_files: set[str] = set()  # test files that compile one at import
        self.memory: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        self.session_unraisable: list[str] = []
        self.started = time.monotonic()


S = _State()


# ---------------------------------------------------------------- options and selection


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lgs-upstream", "LangGraph's suite run speculative")
    group.addoption("--lgs-mode", default="plain", choices=MODES, help="how graphs are compiled")
    group.addoption("--lgs-out", default=None, help="write every test's outcome to this JSON file")
    group.addoption("--lgs-select", default=None, help="JSON file: {'tests': [...], 'files': [...]} to run")
    group.addoption(
        "--lgs-refusals",
        default=None,
        help="JSON file: regexes of speculate() refusals after which a graph is compiled plain",
    )


def pytest_configure(config: pytest.Config) -> None:
    S.mode = config.getoption("--lgs-mode")
    S.out = config.getoption("--lgs-out")
    path = config.getoption("--lgs-refusals")
    if path:
        with open(path) as f:
            S.refusals = [re.compile(p) for p in json.load(f)]
    StateGraph.compile = _patched_compile  # type: ignore[method-assign,assignment]


def pytest_plugin_registered(plugin: Any, manager: Any) -> None:
    """With `LGS_PG_URI`, LangGraph's PostgreSQL fixtures use that server (not Docker's)."""
    uri = os.environ.get("LGS_PG_URI")
    if not uri:
        return
    for name in ("tests.conftest_checkpointer", "tests.conftest_store"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "DEFAULT_POSTGRES_URI"):
            setattr(module, "DEFAULT_POSTGRES_URI", uri)  # noqa: B010


def pytest_unconfigure(config: pytest.Config) -> None:
    StateGraph.compile = _ORIGINAL_COMPILE  # type: ignore[method-assign]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = config.getoption("--lgs-select")
    if not path:
        S.selected = [item.nodeid for item in items]
        return
    with open(path) as f:
        chosen = json.load(f)
    tests, files = set(chosen.get("tests", ())), set(chosen.get("files", ()))
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if item.nodeid in tests or item.nodeid.split("::")[0] in files else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    S.selected = [item.nodeid for item in keep]


# ---------------------------------------------------------------- outcomes


def pytest_runtest_setup(item: pytest.Item) -> None:
    S.current = item.nodeid
    S.memory.clear()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    S.memory.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    rec = S.results.setdefault(report.nodeid, {"outcome": "passed", "unraisable": []})
    if report.failed:
        if rec["outcome"] != "failed":
            rec["outcome"] = "failed" if report.when == "call" else f"error-{report.when}"
            crash = getattr(report.longrepr, "reprcrash", None)
            rec["message"] = (crash.message if crash is not None else str(report.longrepr))[:1500]
    elif report.skipped and rec["outcome"] == "passed":
        rec["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when == "teardown":
        S.current = None


def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    name = type(warning_message.message).__name__
    if name not in ("PytestUnraisableExceptionWarning", "PytestUnhandledThreadExceptionWarning"):
        return
    text = str(warning_message.message)[:1500]
    if nodeid:
        S.results.setdefault(nodeid, {"outcome": "passed", "unraisable": []})["unraisable"].append(text)
    else:
        S.session_unraisable.append(text)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not S.out:
        return
    data = {
        "mode": S.mode,
        "results": S.results,
        "selected": S.selected,
        "compiled_tests": sorted(S.compiled),
        "compile_files": sorted(S.compile_files),
        "session_unraisable": S.session_unraisable,
        "duration_s": round(time.monotonic() - S.started, 1),
    }
    with open(S.out, "w") as f:
        json.dump(data, f, indent=1, default=str)


# ---------------------------------------------------------------- the compile patch


def _note_compile() -> None:
    if S.current is not None:
        S.compiled.add(S.current)
        return
    frame = sys._getframe(2)  # compiled while a test module is imported
    while frame is not None:
        name = frame.f_code.co_filename.replace(os.sep, "/")
        if "/tests/" in name and "/site-packages/" not in name:
            S.compile_files.add("tests/" + name.rsplit("/tests/", 1)[1])
            return
        frame = frame.f_back  # type: ignore[assignment]


def _patched_compile(self: StateGraph, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
    if _inside.get():  # speculate()'s own compile of the builder
        return _ORIGINAL_COMPILE(self, *args, **kwargs)
    _note_compile()
    if S.mode == "plain":
        return _ORIGINAL_COMPILE(self, *args, **kwargs)
    if S.mode == "plain-slow":
        builder = copy.copy(self)
        builder.nodes = {n: _instrument(n, spec) for n, spec in self.nodes.items()}
        return _ORIGINAL_COMPILE(builder, *args, **kwargs)
    from langgraph_speculative import speculate

    token = _inside.set(True)
    try:
        try:
            spec_builder = speculate(self, {name: _speculator(name) for name in self.nodes})
            if S.mode in ("right", "slow"):
                for name, spec in list(spec_builder.nodes.items()):
                    spec_builder.nodes[name] = _instrument(name, spec)
            return spec_builder.compile(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            if not any(p.search(str(exc)) for p in S.refusals):
                raise
            if S.current is not None:
                S.results.setdefault(S.current, {"outcome": "passed", "unraisable": []})["refused"] = str(
                    exc
                )[:300]
    finally:
        _inside.reset(token)
    return _ORIGINAL_COMPILE(self, *args, **kwargs)  # a documented refusal: this graph runs plain


# ---------------------------------------------------------------- speculators


def _key(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {id(value)}>"


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def _as_guess(update: Any) -> list[Any]:
    from langgraph_speculative import Guess

    if update is None:
        return []
    if isinstance(update, dict):
        return [_copy(update)]
    return [Guess(update=_copy(update))]


def _echo(state: Any) -> list[Any]:
    """A wrong guess: the node's input handed back as its update."""
    if isinstance(state, dict):
        fields = dict(state)
    elif hasattr(state, "model_dump") and hasattr(type(state), "model_fields"):
        fields = {k: getattr(state, k) for k in type(state).model_fields}
    elif dataclasses.is_dataclass(state) and not isinstance(state, type):
        fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    else:
        return []
    return [_copy(fields)] if fields else []


def _speculator(name: str) -> Any:
    mode = S.mode

    def speculator(state: Any) -> list[Any]:
        if mode == "none":
            return []
        if mode == "wrong":
            return _echo(state)
        with S.lock:
            known = S.memory.get((name, _key(state)), _MISSING)
        if known is not _MISSING:
            return _as_guess(known)
        return _echo(state) if mode == "slow" else []

    speculator.__name__ = f"lgs_upstream_{mode}_{name}"
    return speculator


_MISSING = object()


# ---------------------------------------------------------------- remembering and slowing


def _remember(name: str, key: str, out: Any) -> None:
    with S.lock:
        S.memory[(name, key)] = _copy(out)


def _instrument(name: str, spec: Any) -> Any:
    """`spec` with its runnable's function slowed (slow modes) and its returns remembered
    (speculative modes); a runnable that is not a function node is left as it is."""
    runnable = spec.runnable
    func, afunc = getattr(runnable, "func", None), getattr(runnable, "afunc", None)
    if not (callable(func) or callable(afunc)) or not hasattr(runnable, "func_accepts"):
        return spec
    slow = S.mode in ("slow", "plain-slow")
    remember = S.mode != "plain-slow"
    twin = copy.copy(runnable)
    if func is not None and not inspect.iscoroutinefunction(func):
        twin.func = _wrap_sync(name, func, slow, remember)
    if isinstance(afunc, functools.partial) and func is not None:
        # A sync function run on a thread (`partial(run_in_executor, None, func)`): LangGraph
        # tells sync nodes by this very shape, so it stays a partial, of the wrapped function.
        args = tuple(twin.func if a is func else a for a in afunc.args)
        twin.afunc = functools.update_wrapper(functools.partial(afunc.func, *args, **afunc.keywords), func)
    elif afunc is not None and inspect.iscoroutinefunction(afunc):
        twin.afunc = _wrap_async(name, afunc, slow, remember)
    return dataclasses.replace(spec, runnable=twin)


def _as_seen(wrapped: Any, fn: Any) -> Any:
    """`wrapped` (around `fn`) unwrapping to what `fn` unwraps to: LangGraph looks one
    `__wrapped__` deep for the subgraphs a node function holds."""
    wrapped.__wrapped__ = getattr(fn, "__wrapped__", fn)
    return wrapped


def _wrap_sync(name: str, fn: Any, slow: bool, remember: bool) -> Any:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        key = _key(args[0]) if args else ""
        if slow:
            time.sleep(SLOW_S)
        out = fn(*args, **kwargs)
        if remember and not inspect.isgenerator(out):
            _remember(name, key, out)
        return out

    return _as_seen(wrapped, fn)


def _wrap_async(name: str, fn: Any, slow: bool, remember: bool) -> Any:
    @functools.wraps(fn)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        key = _key(args[0]) if args else ""
        if slow:
            await asyncio.sleep(SLOW_S)
        out = await fn(*args, **kwargs)
        if remember:
            _remember(name, key, out)
        return out

    return _as_seen(wrapped, fn)
