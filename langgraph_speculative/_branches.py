"""The branch side of a session: forking, running a branch, and what each node does on one.

A branch forks the checkpoint its parent call read into an in-memory checkpointer of its own
and resumes that superstep with the guess standing for the call's write (siblings get the run's
own results). On a branch every node runs as a call the main run may adopt; the branch stops at
the next speculative node (launched early), before a gate or an unsafe node, and at the end.
A `Session` owns one `Forks` and provides what it needs (`ForkHost`).
"""

from __future__ import annotations

import asyncio
import copy
import time
import traceback
import weakref
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any, Protocol, cast

from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphInterrupt

from ._context import _CURRENT, BranchStop, Ctx, exec_info
from ._futures import InputChanged, cancelling, recording_config, settle, unwrap, wait
from ._guesses import describe
from ._handoff import own_command
from ._keys import default_key
from ._report import SpeculationReport
from ._state import Binding, Branch, Entry, Run, Source, forget_when_done, only_reads
from ._tee import ForkSerde, RecordingSaver
from ._trace import current_run_tree, quiet, untraced

if TYPE_CHECKING:
    import concurrent.futures

    from ._adaptive import RunTuning
    from ._concurrency import SharedLimit
    from ._plan import Plan

__all__ = ("ForkHost", "Forks")


class ForkHost(Protocol):
    """What branches and early calls need from the run they speculate for (a `Session`)."""

    plan: Plan
    run: Run
    report: SpeculationReport
    cache: dict[tuple[str, str], Entry]
    speculated: weakref.WeakSet[Entry]
    cache_names: Counter[str]
    results: OrderedDict[str, concurrent.futures.Future[Any]]
    closed: bool
    streams_messages: bool | None
    adaptive: RunTuning
    limit: SharedLimit

    def emit(self, event: str, node: str, **data: Any) -> None: ...

    def spawn(self, coro: Any, holder: Branch | Entry | None = None) -> asyncio.Task[Any]: ...

    def acquire(self) -> str | None: ...

    def not_started(self, node: str, why: str) -> None: ...

    def release_slot(self, owner: Branch | Entry) -> None: ...

    def discard(self, branch: Branch, ending: bool = False) -> None: ...

    def register(self, info: Any) -> concurrent.futures.Future[Any] | None: ...

    def maybe_speculate(self, entry: Entry) -> None: ...

    def call(self, runnable: Any, arg: Any, config: RunnableConfig) -> Any: ...


class Forks:
    """Branches and the calls they launch early, for one run: forking a checkpoint, running the
    branch to its stop, and what each node does on a branch."""

    def __init__(self, session: ForkHost) -> None:
        self.s = session

    async def run_branch(self, branch: Branch) -> None:
        """The branch as one traced run, a child of the speculative node, with its outcome."""
        entry = branch.parent
        cfg: RunnableConfig = {
            "callbacks": quiet(entry.config.get("callbacks")),
            "run_name": f"{entry.name}:speculative_branch",
            "tags": ["speculative"],
            "metadata": {
                "speculative": True,
                "spec_node": entry.name,
                "spec_guess": describe(branch.guess.update),
                "spec_rank": branch.rank,
                "spec_thread": branch.bid,
            },
        }
        try:
            if untraced(cfg["callbacks"]):
                await self._branch_body(branch, cfg)
            else:
                await RunnableLambda(self._branch_body, name=cfg["run_name"]).ainvoke(branch, cfg)
        except (asyncio.CancelledError, BranchStop):
            pass
        except BaseException as exc:  # kept as an event: nothing of a branch reaches the run
            if not branch.cancelled:
                self.s.emit("branch_error", entry.name, thread=branch.bid, error=describe(unwrap(exc)))
        finally:
            self.s.release_slot(branch)
            self.s.discard(branch, ending=True)

    async def _branch_body(self, branch: Branch, config: RunnableConfig) -> dict[str, Any]:
        run_tree = current_run_tree()
        try:
            try:
                await self._branch_run(branch, config)
            finally:
                self.s.release_slot(branch)
            await branch.decided.wait()
        finally:
            outcome = branch.outcome if branch.outcome in ("hit", "miss") else "cancelled"
            if run_tree is not None:
                run_tree.metadata["spec_outcome"] = outcome
        return {"spec_outcome": outcome}

    async def _branch_run(self, branch: Branch, config: RunnableConfig) -> None:
        """Fork the parent call's checkpoint, apply the guess as its write, run to a stop."""
        source = branch.parent.source
        assert source is not None
        try:
            saved = await source.saver.wait_for(source.checkpoint_id)
            if branch.cancelled or self.s.closed:
                return
            step = int((saved.metadata or {}).get("step", -1))
            limit = self._stop() - step - 2
            if limit < 1:
                self.s.emit("branch_end", branch.parent.name, thread=branch.bid, reason="recursion limit")
                return
            saver = RecordingSaver(
                InMemorySaver(serde=ForkSerde()),  # type: ignore[arg-type]
                implicit=None if self.s.run.thread_id is not None else "speculative",
            )
            base: RunnableConfig = {"configurable": {"checkpoint_ns": ""}}
            if self.s.run.thread_id is not None:
                base["configurable"]["thread_id"] = self.s.run.thread_id
            versions = dict(saved.checkpoint["channel_versions"])
            fork = await saver.aput(base, saved.checkpoint, saved.metadata, versions)
            for task_id, writes, path in list(saved.writes):
                if task_id != source.task_id:
                    await saver.aput_writes(fork, writes, task_id, path)
            branch.saver, branch.apply_task = saver, source.task_id
            conf = {**self.s.run.conf, "checkpoint_ns": ""}
            if self.s.run.thread_id is not None:
                conf["thread_id"] = self.s.run.thread_id
            run_cfg: RunnableConfig = {
                "configurable": conf,
                "callbacks": config.get("callbacks"),
                "recursion_limit": limit,
                "tags": list(self.s.run.tags),
                "metadata": dict(self.s.run.metadata),
            }
            graph = self.s.plan.branch_graph(saver, self.s.run)
            self.s.emit("branch", branch.parent.name, thread=branch.bid, rank=branch.rank, level=branch.level)
            _CURRENT.set(Ctx(cast(Any, self.s), branch))  # the Session: a NodeHost
            # The branch's trace run is its parent (through the callbacks), but its tags and
            # metadata must not become the branch nodes' config: they see the run's own.
            var_child_runnable_config.set(None)
            await graph.ainvoke(None, run_cfg, context=self.s.run.context, durability="sync")
        except BranchStop as stop:
            _forget_frames(stop)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not branch.cancelled:
                self.s.emit(
                    "branch_error", branch.parent.name, thread=branch.bid, error=describe(unwrap(exc))
                )
            _forget_frames(exc)

    def _stop(self) -> int:
        """The main run's last step + 1 (LangGraph's recursion bound), which branches share."""
        start = self.s.run.recorder.start_step
        return (start if start is not None else 0) + self.s.run.recursion_limit + 1

    def _role(self, b: Binding) -> str:
        """What a node does on a branch: stop, run inline, or run as a call the main run adopts."""
        if b.unsafe or b.gate or b.stateful or b.name in self.s.run.before or b.name in self.s.plan.gates:
            return "stop"
        if b.inline and (b.nested or not self.s.run.adopt_subgraphs or self.s.streams_messages):
            return "inline" if b.nested and b.name not in self.s.run.after else "stop"
        if b.name in self.s.run.after:
            return "after"
        return "speculative" if b.speculative else "plain"

    async def branch_node(self, b: Binding, state: Any, config: RunnableConfig, branch: Branch) -> Any:
        """A node reached on a branch."""
        info = exec_info()
        tid = getattr(info, "task_id", None)
        if tid is not None:
            if tid == branch.apply_task:
                return copy.deepcopy(branch.guess.update)
            done = self.s.results.get(tid)
            if done is not None:
                # The same task of the superstep the branch resumed: the result the run (or
                # another branch of this fork) got for it, whether it has finished or not.
                try:
                    return await wait(done)
                except GraphInterrupt:
                    raise
                except BranchStop as stop:  # its own, not the one another branch stored: see below
                    raise BranchStop(*stop.args) from None
                except BaseException as exc:
                    handoff = own_command(exc, config, b.name)
                    if handoff is not None:
                        return handoff
                    raise BranchStop(f"{b.name} failed: {describe(exc)}") from None
        fut = self.s.register(info)
        try:
            result = await self._branch_node(b, state, config, branch, info)
        except BaseException as exc:
            result = own_command(exc, config, b.name)  # a handoff is the node's result
            if result is None:
                settle(fut, exc=exc)
                del fut  # the exception, kept by the future, holds this frame: no cycle
                if isinstance(exc, BranchStop):
                    # A fresh one: `exc` may be shared (stored for the branches that resume this
                    # task, or by an early call several branches wait on). The branch that ends
                    # by it clears its traceback's frames (`_forget_frames`); had another branch
                    # raised the same object, that would finalize that branch's coroutines still
                    # suspended with it in flight ("cannot reuse already awaited coroutine").
                    raise BranchStop(*exc.args) from None
                if isinstance(exc, (GraphInterrupt, asyncio.CancelledError)):
                    raise
                raise BranchStop(f"{b.name} failed on a branch: {describe(exc)}") from None
        settle(fut, result=result)
        return result

    async def _branch_node(
        self, b: Binding, state: Any, config: RunnableConfig, branch: Branch, info: Any
    ) -> Any:
        role = self._role(b)
        if role == "stop" or branch.cancelled or self.s.closed:
            raise BranchStop()
        if b.read_only_tools is not None and not only_reads(state, self.s.plan.read_only(b)):
            raise BranchStop()  # a tool call that may write: never on a branch
        if role == "inline":  # a subgraph: its own nodes reach this session and launch early
            return await b.action.ainvoke(state, config)
        try:
            key = b.key(state)
        except BaseException as exc:
            self.s.emit("key_error", b.name, error=describe(exc), branch=branch.bid)
            raise BranchStop() from None
        entry = self.launch(b, key, state, config, branch, info)
        if entry is None or role == "speculative":
            raise BranchStop()
        result = await wait(entry.result)
        if role == "after":
            raise BranchStop()
        return result

    def launch(
        self, b: Binding, key: str, state: Any, config: RunnableConfig, branch: Branch, info: Any
    ) -> Entry | None:
        """Launch `b` on `branch` as a call the main run may adopt (or reuse an equal one)."""
        existing = self.s.cache.get((b.name, key))
        if existing is not None and not existing.cancelled:
            if existing not in branch.entries:
                branch.entries.append(existing)
            return existing
        if not self.s.adaptive.may_launch(cast(Any, self.s)):  # the run's speculative budget (issue 18)
            return None
        if not self.s.limit.try_speculative():  # the main run uses the run's max_concurrency
            self.s.not_started(b.name, "max_concurrency")
            return None
        if branch.slot:
            branch.slot = False  # the branch's own work is done or waits on this call: its slot goes to it
        else:
            why = self.s.acquire()
            if why is not None:
                self.s.limit.speculative_ended()
                self.s.not_started(b.name, why)
                return None
        source = None
        if info is not None and info.task_id is not None and "|" not in (info.checkpoint_ns or ""):
            source = Source(branch.saver, info.checkpoint_id, info.task_id)
        entry = Entry(b, key, branch.level, state, config, source, owner=branch, slot=True)
        entry.config = recording_config(config, entry, bool(self.s.streams_messages))
        self.s.speculated.add(entry)
        self.s.adaptive.launched(entry)  # counts its tokens (issue 18)
        store = self.s.run.store
        entry.store_version = store.version if store is not None else 0
        entry.task = self.s.spawn(self._early_call(entry, entry.config), holder=entry)
        entry.task.add_done_callback(lambda _: self.s.limit.speculative_ended())
        forget_when_done(entry.task, entry, "task")
        self.s.cache[(b.name, key)] = entry
        self.s.cache_names[b.name] += 1
        branch.entries.append(entry)
        self.s.report.node(b.name).launched += 1
        self.s.emit("launch", b.name, key=key, branch=branch.bid, level=branch.level)
        self.s.maybe_speculate(entry)
        return entry

    def _changed_input(self, name: str) -> None:
        self.s.emit("input_changed", name)
        self.s.plan.warn_once(
            f"input-changed:{name}",
            f"node {name!r} changed its input state in place on an early call (a plain run keeps "
            "such a change in the channel's value; a branch made it to its own copy): its early "
            "calls are not adopted, the main run calls it itself. Return the change as an update "
            "instead of changing the state it is given.",
            stacklevel=2,
        )

    async def _early_call(self, entry: Entry, config: RunnableConfig) -> None:
        _CURRENT.set(Ctx(cast(Any, self.s), entry.owner, entry))  # the Session: a NodeHost
        var_child_runnable_config.set(config)  # get_config(), get_stream_writer() & co see its config
        given = entry.state  # (an adoption may point `entry.state` at the main run's input)
        # with the default key, the call's key is that fingerprint already (an adopted input has it too)
        before = entry.key if entry.binding.key_fn is None and entry.key else _fingerprint(given)
        try:
            result = await self.s.call(entry.binding.early_action, given, config)
            if before is not None and _fingerprint(given) != before:
                self._changed_input(entry.name)
                raise InputChanged()
        except asyncio.CancelledError:
            entry.result.cancel()
            if cancelling():
                raise
        except BaseException as exc:  # kept for the main run, which then calls the actor itself
            handoff = own_command(exc, config, entry.name)  # a handoff is its result
            entry.handoff = handoff is not None
            if not entry.result.done():
                if handoff is not None:
                    entry.result.set_result(handoff)
                else:
                    entry.result.set_exception(exc)
            if (
                handoff is None
                and not entry.cancelled
                and not self.s.closed
                and not isinstance(exc, InputChanged)
            ):
                self.s.emit("early_call_error", entry.name, key=entry.key, error=describe(unwrap(exc)))
        else:
            if not entry.result.done():
                entry.result.set_result(result)
        finally:
            entry.finished = time.monotonic()
            self.s.release_slot(entry)


def _fingerprint(state: Any) -> str | None:
    """What tells a call's input apart (`default_key`), to see whether the call changed it."""
    try:
        return default_key(state)
    except Exception:  # a state the default key cannot read: not checked
        return None


def _forget_frames(exc: BaseException) -> None:
    """A branch's run ended by `exc`: clear the finished frames its traceback holds. Their
    locals (LangGraph's runner keeps the exception in them too) would otherwise be reference
    cycles holding the branch, its calls and its Pregel loop until the collector runs."""
    traceback.clear_frames(exc.__traceback__)
    exc.__traceback__ = None
