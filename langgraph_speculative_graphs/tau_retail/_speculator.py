"""An offline speculator for the retail agent's next tool call.

It learns, from tau-bench's recorded conversations and train tasks, which
tool follows which (bigram counts) and which of the ids on the table the
agent picks next (rank among the not-yet-used ids of a user's order list or
an order's items). At run time it reads ids from earlier tool outputs (user
ids, order lists, order items) and from the customer's messages (emails,
order numbers), and returns the most likely calls, best first. No model, no
key, nothing about task ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ._db import data_text

__all__ = ("CallSpeculator", "infer_calls", "learned")

Call = dict[str, Any]  # {"name": str, "kwargs": dict, "output": str (when known)}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
ORDER = re.compile(r"#W\d{7}")
USER_ID = re.compile(r"^[a-z]+_[a-z]+_\d{4}$")
START = "<start>"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def infer_calls(conversation: str) -> list[tuple[str, str, str]]:
    """(tool name, its output, user text so far) for each tool line of a recorded conversation.

    The recordings show tool calls as `assistant: None`; the output tells which
    call it was (a user id, a user record, an order, a product, ...).
    """
    calls: list[tuple[str, str, str]] = []
    said = ""
    seen_status: dict[str, object] = {}
    for line in conversation.split("\n"):
        role, _, text = line.partition(": ")
        if role == "user":
            said += " " + text
            continue
        if role != "tool":
            continue
        data = _json(text)
        name: str | None = None
        if isinstance(data, dict) and "orders" in data and "payment_methods" in data:
            name = "get_user_details"
        elif isinstance(data, dict) and "order_id" in data:
            before = seen_status.get(data["order_id"])
            status = data.get("status")
            writes = {
                "cancelled": "cancel_pending_order",
                "return requested": "return_delivered_order_items",
                "exchange requested": "exchange_delivered_order_items",
                "pending (item modified)": "modify_pending_order_items",
            }
            name = (
                writes[status]
                if before is not None and before != status and isinstance(status, str) and status in writes
                else "get_order_details"
            )
            seen_status[data["order_id"]] = status
        elif isinstance(data, dict) and "variants" in data:
            name = "get_product_details"
        elif (
            isinstance(data, dict) and data and all(isinstance(v, str) and v.isdigit() for v in data.values())
        ):
            name = "list_all_product_types"
        elif USER_ID.match(text.strip()):
            name = "find_user_id_by_email" if EMAIL.search(said) else "find_user_id_by_name_zip"
        elif text.strip() == "Transfer successful":
            name = "transfer_to_human_agents"
        elif re.fullmatch(r"-?\d+(\.\d+)?", text.strip()):
            name = "calculate"
        if name:
            calls.append((name, text, said))
    return calls


@dataclass
class CallSpeculator:
    """Ranked guesses of the agent's next call. Build with `CallSpeculator.fit()`."""

    follows: dict[str, Counter[str]] = field(default_factory=dict)
    """follows[previous tool][next tool]: counts."""
    order_rank: Counter[int] = field(default_factory=Counter)
    """Which not-yet-fetched order of a user's list is fetched next (0 = first)."""
    item_rank: Counter[int] = field(default_factory=Counter)
    """Which not-yet-fetched product of the latest orders is fetched next."""
    cancel_reasons: Counter[str] = field(default_factory=Counter)
    user_reply: str = "yes"
    """The customer's most common message after their first one."""

    @classmethod
    def fit(
        cls, conversations: list[str] | None = None, tasks: list[dict[str, Any]] | None = None
    ) -> CallSpeculator:
        """Learn from recorded conversations and train tasks (tau-bench's, by default)."""
        if conversations is None:
            conversations = [
                json.loads(line)["messages_display"]
                for line in data_text("few_shot_retail.jsonl").splitlines()
                if line.strip()
            ]
        if tasks is None:
            tasks = json.loads(data_text("tasks_train.json"))
        spec = cls()
        follows: dict[str, Counter[str]] = defaultdict(Counter)
        replies: Counter[str] = Counter()
        for conv in conversations:
            said = [ln[6:].strip() for ln in conv.split("\n") if ln.startswith("user: ")]
            replies.update(r for r in said[1:] if r and "###STOP###" not in r)  # a reply that goes on
            history: list[Call] = []
            prev = START
            for name, output, _ in infer_calls(conv):
                follows[prev][name] += 1
                prev = name
                call = {"name": name, "kwargs": {}, "output": output}
                if name == "get_order_details":
                    data = _json(output)
                    ranked = spec._order_candidates(history)
                    if data and data.get("order_id") in ranked:
                        spec.order_rank[ranked.index(data["order_id"])] += 1
                    call["kwargs"] = {"order_id": (data or {}).get("order_id")}
                elif name == "get_product_details":
                    data = _json(output)
                    ranked = spec._product_candidates(history)
                    if data and data.get("product_id") in ranked:
                        spec.item_rank[ranked.index(data["product_id"])] += 1
                    call["kwargs"] = {"product_id": (data or {}).get("product_id")}
                history.append(call)
        for task in tasks:
            prev = START
            for action in task.get("actions", []):
                if prev != START:  # train tasks list only writes: their first call is not the conversation's
                    follows[prev][action["name"]] += 1
                prev = action["name"]
                if action["name"] == "cancel_pending_order":
                    spec.cancel_reasons[action["kwargs"].get("reason", "")] += 1
        spec.follows = dict(follows)
        if replies:
            spec.user_reply = replies.most_common(1)[0][0]
        return spec

    # ---- candidates ----------------------------------------------------------------------------

    @staticmethod
    def _used(history: list[Call], name: str, arg: str) -> set[Any]:
        return {c["kwargs"].get(arg) for c in history if c["name"] == name}

    def _order_candidates(self, history: list[Call]) -> list[str]:
        fetched = self._used(history, "get_order_details", "order_id")
        for call in reversed(history):
            data = _json(call.get("output", ""))
            if isinstance(data, dict) and "orders" in data and "payment_methods" in data:
                return [o for o in data["orders"] if o not in fetched]
        return []

    def _product_candidates(self, history: list[Call]) -> list[str]:
        fetched = self._used(history, "get_product_details", "product_id")
        out: list[str] = []
        for call in reversed(history):
            data = _json(call.get("output", ""))
            if isinstance(data, dict) and "items" in data and "order_id" in data:
                for item in data["items"]:
                    if item["product_id"] not in fetched and item["product_id"] not in out:
                        out.append(item["product_id"])
        return out

    @staticmethod
    def _rank_prob(counts: Counter[int], n: int) -> list[float]:
        weights = [counts.get(i, 0) + 1.0 for i in range(n)]  # add-one smoothing
        total = sum(weights)
        return [w / total for w in weights]

    def _args(self, name: str, history: list[Call], said: str) -> list[tuple[dict[str, Any], float]]:
        """Argument candidates for tool `name` with their probabilities."""
        if name == "get_user_details":
            ids = [c["output"].strip() for c in history if USER_ID.match(str(c.get("output", "")).strip())]
            done = self._used(history, "get_user_details", "user_id")
            ids = [i for i in reversed(ids) if i not in done]
            return [({"user_id": ids[0]}, 1.0)] if ids else []
        if name == "find_user_id_by_email":
            done = self._used(history, name, "email")
            emails = [e for e in dict.fromkeys(EMAIL.findall(said)) if e not in done]
            return [({"email": e}, 1.0 / len(emails)) for e in emails]
        if name == "get_order_details":
            fetched = self._used(history, name, "order_id")
            mentioned = [o for o in dict.fromkeys(ORDER.findall(said)) if o not in fetched]
            listed = [o for o in self._order_candidates(history) if o not in mentioned]
            probs = self._rank_prob(self.order_rank, len(listed))
            out = [({"order_id": o}, 0.9 / len(mentioned)) for o in mentioned]
            scale = 0.1 if mentioned else 1.0
            return out + [({"order_id": o}, scale * p) for o, p in zip(listed, probs)]
        if name == "get_product_details":
            cands = self._product_candidates(history)
            return [
                ({"product_id": p}, q) for p, q in zip(cands, self._rank_prob(self.item_rank, len(cands)))
            ]
        if name == "list_all_product_types":
            return [({}, 1.0)]
        if name == "cancel_pending_order":
            for call in reversed(history):
                data = _json(call.get("output", ""))
                if isinstance(data, dict) and data.get("status") == "pending":
                    total = sum(self.cancel_reasons.values()) or 1
                    return [
                        ({"order_id": data["order_id"], "reason": r}, c / total)
                        for r, c in self.cancel_reasons.most_common()
                    ]
        return []

    def guess(self, history: list[Call], k: int = 3, said: str = "") -> list[Call]:
        """The k most likely next calls `{"name", "kwargs"}`, best first.

        `history`: earlier calls with their outputs; `said`: what the customer
        has written so far (optional).
        """
        prev = history[-1]["name"] if history else START
        nxt = self.follows.get(prev) or self.follows.get(START) or Counter()
        total = sum(nxt.values()) or 1
        scored: list[tuple[float, Call]] = []
        for name, count in nxt.items():
            for kwargs, p in self._args(name, history, said):
                scored.append((count / total * p, {"name": name, "kwargs": kwargs}))
        scored.sort(key=lambda sc: -sc[0])
        return [c for _, c in scored[:k]]


@cache
def learned() -> CallSpeculator:
    """`CallSpeculator.fit()` on tau-bench's own data, fitted once per process (it is never mutated)."""
    return CallSpeculator.fit()
