"""Speculation for `create_agent` apps: one middleware line, measured against the plain agent.

Two workloads, each run by the plain agent and by the same agent with
`SpeculativeToolCalls` (one after the other, in one process, the same
conversations). Both must produce the same transcript (every message, the
random provider tool-call ids compared by the call they name) and, for
tau-bench, the same database; every write must be run by the tool step,
never early. The script checks all of it and stops if anything differs.

- **read-heavy**: a support agent (find the customer, read them, read the
  order they name, its product, their other order, then cancel that one).
  A scripted model with `--model-latency` per call and random provider ids;
  five read tools and a write at `--tool-latency`. The speculator is
  `ToolPatternSpeculator`, taught by `--train` earlier conversations of other
  customers (no value of a measured conversation is ever seen in training).
- **tau-retail**: the tau-bench retail tools (`langgraph_speculative_graphs/tau_retail`) through
  `create_agent`, the 15 test tasks, a model replaying each task's calls
  (`--tau-model-latency` a turn, random ids), tools at `--tau-tool-latency`.
  Speculators: tau-bench's `CallSpeculator` and `ToolPatternSpeculator`
  taught by tau-bench's 69 recorded conversations; both learn online from
  the tasks they finish.

    python benchmarks/agents.py --quick
    python benchmarks/agents.py --json
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import parser  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.runnables.config import ensure_config  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402

from langgraph_speculative import SpeculationPolicy, speculate, speculation_info  # noqa: E402
from langgraph_speculative.agents import SpeculativeToolCalls, ToolPatternSpeculator, model_call_speculator  # noqa: E402

Script = Callable[[list[BaseMessage]], "list[tuple[str, dict[str, Any]]] | str"]


class ScriptModel(BaseChatModel):
    """A chat model that answers `script(messages)` after `delay` seconds, with random call ids."""

    script: Any
    delay: float

    @property
    def _llm_type(self) -> str:
        return "script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptModel:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        turn = self.script(messages)
        if isinstance(turn, str):
            return AIMessage(content=turn)
        calls = [{"name": n, "args": a, "id": f"call_{uuid.uuid4().hex[:24]}"} for n, a in turn]
        return AIMessage(content="", tool_calls=calls)

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])


def make_tool(name: str, fn: Callable[..., Any], latency: float, log: list[dict[str, Any]]) -> BaseTool:
    """`fn` as a tool taking `latency` seconds; each execution logged, `early` unless the tool step ran it."""

    def note() -> None:
        node = (ensure_config().get("metadata") or {}).get("langgraph_node")
        log.append({"name": name, "early": node != "tools" or speculation_info() is not None})

    def run(**kw: Any) -> Any:
        note()
        time.sleep(latency)
        return fn(**kw)

    async def arun(**kw: Any) -> Any:
        note()
        await asyncio.sleep(latency)
        return fn(**kw)

    schema = StructuredTool.from_function(fn, name=name).args_schema
    return StructuredTool.from_function(
        func=run, coroutine=arun, name=name, description=fn.__doc__ or name, args_schema=schema
    )


def transcript(messages: list[BaseMessage]) -> list[Any]:
    """Messages as data: message ids dropped, tool-call ids by order of first appearance."""
    ids: dict[str, str] = {}
    out = []
    for m in messages:
        d = m.model_dump(exclude={"id"})
        if isinstance(m, AIMessage):
            d["tool_calls"] = [
                {**c, "id": ids.setdefault(str(c["id"]), f"c{len(ids)}")} for c in m.tool_calls
            ]
        if isinstance(m, ToolMessage):
            d["tool_call_id"] = ids.setdefault(m.tool_call_id, f"c{len(ids)}")
        out.append(d)
    return out


# ---------------------------------------------------------------------- read-heavy support agent

WRITES_SUPPORT = {"cancel_order"}


def customers(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        first = rng.choice(["ann", "bo", "cleo", "dev", "eve", "fay", "gus", "hal", "ida", "jon"])
        last = rng.choice(["lee", "moss", "ng", "ortiz", "park", "quinn"])
        orders = {
            f"#W{rng.randint(10**6, 10**7 - 1)}": {
                "status": rng.choice(["pending", "delivered"]),
                "items": [{"product_id": str(rng.randint(10**9, 10**10 - 1)), "qty": 1}],
            }
            for _ in range(3)
        }
        out.append(
            {
                "email": f"{first}.{last}{rng.randint(10, 99)}@example.com",
                "user_id": f"{first}_{last}_{rng.randint(1000, 9999)}_{i}",
                "orders": orders,
                "mentioned": rng.choice(list(orders)),
            }
        )
    return out


def support_tools(shop: list[dict[str, Any]], latency: float, log: list[dict[str, Any]]) -> list[BaseTool]:
    users = {c["user_id"]: c for c in shop}
    orders = {o: {**v, "order_id": o} for c in shop for o, v in c["orders"].items()}

    def find_user(email: str) -> str:
        """The user id for an email."""
        return next((c["user_id"] for c in shop if c["email"] == email), "Error: user not found")

    def get_user(user_id: str) -> str:
        """A user's record and order list."""
        c = users.get(user_id)
        return json.dumps({"user_id": user_id, "orders": list(c["orders"])}) if c else "Error: no user"

    def get_order(order_id: str) -> str:
        """An order's status and items."""
        return json.dumps(orders[order_id]) if order_id in orders else "Error: no order"

    def get_product(product_id: str) -> str:
        """A product's details."""
        return json.dumps({"product_id": product_id, "name": f"product {product_id[-3:]}", "price": 19.5})

    def cancel_order(order_id: str) -> str:
        """Cancel an order (a write)."""
        orders[order_id]["status"] = "cancelled"
        return f"Order {order_id} cancelled"

    return [
        make_tool(f.__name__, f, latency, log)
        for f in (find_user, get_user, get_order, get_product, cancel_order)
    ]


def support_script(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]] | str:
    """The support agent's policy, as a function of the conversation."""
    said = " ".join(str(m.content) for m in messages if isinstance(m, HumanMessage))
    results: list[Any] = [
        json.loads(str(m.content)) if str(m.content).startswith("{") else m.content
        for m in messages
        if isinstance(m, ToolMessage)
    ]
    n = len(results)
    if n == 0:
        return [("find_user", {"email": re.search(r"[\w.+-]+@[\w-]+\.\w+", said).group(0)})]  # type: ignore[union-attr]
    if n == 1:
        return [("get_user", {"user_id": results[0]})]
    mentioned = re.search(r"#W\d{7}", said).group(0)  # type: ignore[union-attr]
    if n == 2:
        return [("get_order", {"order_id": mentioned})]
    if n == 3:
        return [("get_product", {"product_id": results[2]["items"][0]["product_id"]})]
    other = next(o for o in results[1]["orders"] if o != mentioned)
    if n == 4:
        return [("get_order", {"order_id": other})]
    if n == 5:
        return [("cancel_order", {"order_id": other})]
    return f"Your order {mentioned} is {results[2]['status']}; I cancelled {other}."


def support_question(c: dict[str, Any]) -> str:
    return f"Hi, I'm {c['email']}. Where is my order {c['mentioned']}? And please cancel my other order."


# ---------------------------------------------------------------------- tau-bench retail


def tau_tools(db: Any, latency: float, log: list[dict[str, Any]]) -> list[BaseTool]:
    """The 15 retail tools over `db` (langgraph_speculative_graphs/tau_retail), each taking `latency`
    seconds."""
    from langgraph_speculative_graphs.tau_retail import READ_TOOLS, WRITE_TOOLS

    return [make_tool(name, getattr(db, name), latency, log) for name in READ_TOOLS + WRITE_TOOLS]


_TASKS = os.path.join(
    os.path.dirname(__file__),
    "..",
    "langgraph_speculative_graphs",
    "tau_retail",
    "data",
    "tasks_test_sample.json",
)

TAU_READS = {
    "calculate",
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_order_details",
    "get_product_details",
    "get_user_details",
    "list_all_product_types",
}  # tau-bench lists transfer_to_human_agents with the reads; it hands the customer over, so not here


def replay_script(actions: list[dict[str, Any]]) -> Script:
    def script(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]] | str:
        done = sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))
        if done < len(actions):
            return [(actions[done]["name"], actions[done]["kwargs"])]
        return "Everything you asked for is done. Is there anything else?"

    return script


def call_speculator_adapter(k: int) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """tau-bench's `CallSpeculator` (langgraph_speculative_graphs/tau_retail) as a middleware speculator."""
    from langgraph_speculative_graphs.tau_retail import CallSpeculator

    spec = CallSpeculator.fit()

    def guess(state: dict[str, Any]) -> list[dict[str, Any]]:
        messages = state["messages"]
        outputs = {m.tool_call_id: str(m.content) for m in messages if isinstance(m, ToolMessage)}
        calls = [
            {"name": c["name"], "kwargs": c["args"], "output": outputs.get(c["id"] or "", "")}
            for m in messages
            if isinstance(m, AIMessage)
            for c in m.tool_calls
        ]
        said = " ".join(str(m.content) for m in messages if isinstance(m, HumanMessage))
        return [{"name": g["name"], "args": g["kwargs"]} for g in spec.guess(calls, k, said)]

    return guess


def fewshot_conversations() -> list[list[BaseMessage]]:
    """tau-bench's 69 recorded retail conversations as messages, each call's arguments read back
    from its output (the recordings show calls as `assistant: None`)."""
    from langgraph_speculative_graphs.tau_retail._db import data_text
    from langgraph_speculative_graphs.tau_retail._speculator import infer_calls

    email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    out = []
    for line in data_text("few_shot_retail.jsonl").splitlines():
        if not line.strip():
            continue
        conversation = json.loads(line)["messages_display"]
        calls = infer_calls(conversation)
        messages: list[BaseMessage] = []
        said_so_far = ""
        last_user = None
        for i, (name, output, said) in enumerate(calls):
            if said != said_so_far:
                messages.append(HumanMessage(said[len(said_so_far) :].strip()))
                said_so_far = said
            data = _json(output)
            args: dict[str, Any] = {}
            if name == "find_user_id_by_email" and email.findall(said):
                args = {"email": email.findall(said)[-1].rstrip(".")}
            elif name == "find_user_id_by_name_zip":
                nxt = _json(calls[i + 1][1]) if i + 1 < len(calls) else None
                if isinstance(nxt, dict) and "name" in nxt:
                    n, a = nxt["name"], nxt.get("address", {})
                    args = {"first_name": n["first_name"], "last_name": n["last_name"], "zip": a.get("zip")}
            elif name == "get_user_details" and last_user:
                args = {"user_id": last_user}
            elif "order" in name and isinstance(data, dict) and "order_id" in data:
                args = {"order_id": data["order_id"]}  # a write's other arguments are not recorded
            elif name == "get_product_details" and isinstance(data, dict):
                args = {"product_id": data.get("product_id")}
            if name.startswith("find_user_id"):
                last_user = output.strip()
            cid = f"call_{uuid.uuid4().hex[:12]}"
            messages.append(AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": cid}]))
            messages.append(ToolMessage(content=output, tool_call_id=cid, name=name))
        messages.append(AIMessage(content="(answers)"))
        out.append(messages)
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------- runs


def run_agent(
    model: BaseChatModel, tools: list[BaseTool], middleware: list[Any], question: str, sync: bool
) -> tuple[list[BaseMessage], float]:
    agent = create_agent(model, tools, middleware=middleware)
    inputs: Any = {"messages": [HumanMessage(question)]}
    t0 = time.perf_counter()
    out = (
        agent.invoke(inputs, {"recursion_limit": 200})
        if sync
        else asyncio.run(agent.ainvoke(inputs, {"recursion_limit": 200}))
    )
    return out["messages"], time.perf_counter() - t0


def run_sequential(case: dict[str, Any], sync: bool) -> dict[str, Any]:
    """The plain agent."""
    log: list[dict[str, Any]] = []
    model, tools, state = case["build"](log)
    messages, elapsed = run_agent(model, tools, [], case["question"], sync)
    return {"elapsed": elapsed, "messages": messages, "log": log, "state": state(), "report": None}


def run_middleware(case: dict[str, Any], sync: bool) -> dict[str, Any]:
    """The same agent with `middleware=[SpeculativeToolCalls(speculator, read_only=...)]`."""
    log: list[dict[str, Any]] = []
    model, tools, state = case["build"](log)
    mw = SpeculativeToolCalls(case["speculator"], read_only=case["read_only"], policy=SpeculationPolicy(k=3))
    messages, elapsed = run_agent(model, tools, [mw], case["question"], sync)
    return {"elapsed": elapsed, "messages": messages, "log": log, "state": state(), "report": mw.last_report}


def run_graph_level(case: dict[str, Any], sync: bool) -> dict[str, Any]:
    """The agent's own graph, speculated at graph level.

    `speculate(create_agent(...), {"model": model_call_speculator(...)}, read_only_tools=...)`."""
    log: list[dict[str, Any]] = []
    model, tools, state = case["build"](log)
    agent = speculate(
        create_agent(model, tools),
        {"model": model_call_speculator(case["speculator"])},
        read_only_tools=case["read_only"],
        policy=SpeculationPolicy(k=3),
    )
    inputs: Any = {"messages": [HumanMessage(case["question"])]}
    t0 = time.perf_counter()
    out = (
        agent.invoke(inputs, {"recursion_limit": 200})
        if sync
        else asyncio.run(agent.ainvoke(inputs, {"recursion_limit": 200}))
    )
    elapsed = time.perf_counter() - t0
    return {
        "elapsed": elapsed,
        "messages": out["messages"],
        "log": log,
        "state": state(),
        "report": agent.last_report,
    }


MODES: dict[str, Callable[[dict[str, Any], bool], dict[str, Any]]] = {
    "sequential": run_sequential,
    "middleware": run_middleware,
    "graph_level": run_graph_level,
}
"""Each mode runs one conversation and returns its elapsed time, messages, tool log, end state, report.
A mode added here becomes a column of the table and a key of the JSON."""


def measure(
    name: str,
    cases: list[dict[str, Any]],
    sync: bool,
    writes: set[str],
    plain: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every mode on every case; `plain` keeps the sequential runs by case, to reuse across speculators."""
    totals = {m: 0.0 for m in MODES}
    adopted = launched = early_writes = writes_run = 0
    for case in cases:
        results = {}
        for mode, fn in MODES.items():
            if mode == "sequential" and plain is not None and case["label"] in plain:
                results[mode] = plain[case["label"]]
                continue
            results[mode] = fn(case, sync)
            if mode == "sequential" and plain is not None:
                plain[case["label"]] = results[mode]
        base = results["sequential"]
        times = ", ".join(f"{m} {r['elapsed']:.2f} s" for m, r in results.items())
        print(f"{name} {case['label']}: {times}", file=sys.stderr, flush=True)  # progress
        for mode, r in results.items():
            totals[mode] += r["elapsed"]
            if transcript(r["messages"]) != transcript(base["messages"]) or r["state"] != base["state"]:
                raise SystemExit(f"{name}, {case['label']}: {mode} differs from the plain agent")
            early_writes += sum(1 for e in r["log"] if e["name"] in writes and e["early"])
            if r["report"] is not None:
                adopted += r["report"].adopted
                launched += r["report"].node("model").launched
                writes_run += sum(1 for e in r["log"] if e["name"] in writes)
    if early_writes:
        raise SystemExit(f"{name}: {early_writes} write(s) ran early")
    seq = totals["sequential"]
    return {
        "workload": name,
        "conversations": len(cases),
        **{f"{m}_s": round(t, 3) for m, t in totals.items()},
        **{f"{m}_saved_pct": round(100 * (1 - t / seq), 1) for m, t in totals.items() if m != "sequential"},
        "adopted_calls": adopted,
        "launched": launched,
        "writes_run": writes_run,
        "early_writes": early_writes,
        "identical": True,
    }


def support_cases(args: Any) -> list[dict[str, Any]]:
    people = customers(args.seed, args.train + args.conversations)
    train, test = people[: args.train], people[args.train :]
    shop = people  # one shop holds every customer
    spec = ToolPatternSpeculator()
    for c in train:  # earlier conversations the agent had, run fast
        log: list[dict[str, Any]] = []
        messages, _ = run_agent(
            ScriptModel(script=support_script, delay=0.0),
            support_tools(_copy(shop), 0.0, log),
            [],
            support_question(c),
            True,
        )
        spec.learn(messages)
    cases = []
    for c in test:

        def build(log: list[dict[str, Any]]) -> tuple[Any, list[BaseTool], Callable[[], Any]]:
            data = _copy(shop)
            tools = support_tools(data, args.tool_latency, log)
            return ScriptModel(script=support_script, delay=args.model_latency), tools, lambda: _copy(data)

        cases.append(
            {
                "label": c["email"],
                "question": support_question(c),
                "build": build,
                "speculator": spec,
                "read_only": {"find_user", "get_user", "get_order", "get_product"},
            }
        )
    return cases


def tau_cases(args: Any, speculator: str) -> list[dict[str, Any]]:
    from langgraph_speculative_graphs.tau_retail import RetailDB, load_tasks

    tasks = load_tasks(_TASKS)[: args.tau_tasks]
    if speculator == "pattern":  # learns online too: the middleware shows it every finished task
        spec: Any = ToolPatternSpeculator.fit(fewshot_conversations())
    else:
        spec = call_speculator_adapter(3)
    cases = []
    for i, task in enumerate(tasks):

        def build(
            log: list[dict[str, Any]], task: dict[str, Any] = task
        ) -> tuple[Any, list[BaseTool], Callable[[], Any]]:
            db = RetailDB()
            model = ScriptModel(script=replay_script(task["actions"]), delay=args.tau_model_latency)
            return model, tau_tools(db, args.tau_tool_latency, log), db.hash

        cases.append(
            {
                "label": f"task {i}",
                "question": f"Hi! {task['instruction']}",
                "build": build,
                "speculator": spec,
                "read_only": TAU_READS,
            }
        )
    return cases


def tau_accuracy(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-1/top-3 of each speculator's read-only guesses for the tasks' read calls (no latency).

    Replays each task's calls on a fresh database and asks both speculators,
    before every read, for their guesses; writes are dropped first, as the
    middleware does.
    """
    from langgraph_speculative_graphs.tau_retail import RetailDB

    speculators: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
        "pattern": ToolPatternSpeculator.fit(fewshot_conversations()),
        "call": call_speculator_adapter(10),
    }
    hits = {name: [0, 0] for name in speculators}
    reads = 0
    for task in tasks:
        db = RetailDB()
        messages: list[BaseMessage] = [HumanMessage(f"Hi! {task['instruction']}")]
        for action in task["actions"]:
            if action["name"] in TAU_READS:
                reads += 1
                real = json.dumps([action["name"], action["kwargs"]], sort_keys=True)
                for name, spec in speculators.items():
                    guesses = [g for g in spec({"messages": messages}) if g["name"] in TAU_READS][:3]
                    keys = [json.dumps([g["name"], g["args"]], sort_keys=True) for g in guesses]
                    hits[name][0] += real in keys[:1]
                    hits[name][1] += real in keys
            cid = f"call_{uuid.uuid4().hex[:12]}"
            messages.append(
                AIMessage(
                    content="", tool_calls=[{"name": action["name"], "args": action["kwargs"], "id": cid}]
                )
            )
            messages.append(ToolMessage(content=db.call(action["name"], action["kwargs"]), tool_call_id=cid))
    return {
        "reads": reads,
        **{f"{n}_top1_pct": round(100 * h[0] / max(reads, 1), 1) for n, h in hits.items()},
        **{f"{n}_top3_pct": round(100 * h[1] / max(reads, 1), 1) for n, h in hits.items()},
    }


def _copy(x: Any) -> Any:
    return json.loads(json.dumps(x))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sync", action="store_true", help="invoke() instead of ainvoke()")
    p.add_argument("--conversations", type=int, default=None, help="read-heavy conversations measured (8)")
    p.add_argument("--train", type=int, default=4, help="earlier conversations the speculator learns from")
    p.add_argument(
        "--model-latency", type=float, default=None, help="read-heavy: seconds per model call (0.3)"
    )
    p.add_argument("--tool-latency", type=float, default=None, help="read-heavy: seconds per tool call (0.3)")
    p.add_argument("--tau-tasks", type=int, default=None, help="tau-bench test tasks (15)")
    p.add_argument("--tau-model-latency", type=float, default=None, help="tau: seconds per agent turn (1.0)")
    p.add_argument("--tau-tool-latency", type=float, default=None, help="tau: seconds per tool call (0.5)")
    p.add_argument("--only", choices=["read-heavy", "tau"], help="run one workload")
    args = p.parse_args()
    q = args.quick
    args.conversations = args.conversations or (3 if q else 8)
    args.model_latency = args.model_latency if args.model_latency is not None else (0.15 if q else 0.3)
    args.tool_latency = args.tool_latency if args.tool_latency is not None else (0.15 if q else 0.3)
    args.tau_tasks = args.tau_tasks or (4 if q else 15)
    args.tau_model_latency = (
        args.tau_model_latency if args.tau_model_latency is not None else (0.3 if q else 1.0)
    )
    args.tau_tool_latency = (
        args.tau_tool_latency if args.tau_tool_latency is not None else (0.15 if q else 0.5)
    )
    rows = []
    if args.only in (None, "read-heavy"):
        rows.append(measure("read-heavy", support_cases(args), args.sync, WRITES_SUPPORT))
    if args.only in (None, "tau"):
        from langgraph_speculative_graphs.tau_retail import WRITE_TOOLS

        plain: dict[str, dict[str, Any]] = {}  # one sequential run per task serves both rows
        for spec in ("pattern", "call"):
            rows.append(
                measure(f"tau-retail ({spec})", tau_cases(args, spec), args.sync, set(WRITE_TOOLS), plain)
            )
    from langgraph_speculative_graphs.tau_retail import load_tasks

    accuracy = tau_accuracy(load_tasks(_TASKS))
    settings = {
        "mode": "sync" if args.sync else "async",
        "model_latency_s": args.model_latency,
        "tool_latency_s": args.tool_latency,
        "tau_model_latency_s": args.tau_model_latency,
        "tau_tool_latency_s": args.tau_tool_latency,
    }
    if args.json:
        print(json.dumps({**settings, "rows": rows, "tau_accuracy": accuracy}))
        return
    columns = [
        "workload",
        "conversations",
        *(f"{m}_s" for m in MODES),
        *(f"{m}_saved_pct" for m in MODES if m != "sequential"),
        "adopted_calls",
        "launched",
        "writes_run",
        "early_writes",
        "identical",
    ]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
    print("tau-bench test tasks, read calls:", accuracy)
    print(json.dumps({**settings, "rows": rows, "tau_accuracy": accuracy}))


if __name__ == "__main__":
    main()
