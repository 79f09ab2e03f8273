"""The retail database and its 15 tools, with tau-bench's semantics.

Data: tau-bench's retail domain (MIT License, Copyright (c) 2024 Sierra; see
data/LICENSE). The tools are written here from tau-bench's policy, data and
recorded outputs. Every tool returns a string, as tau-bench's do; bad
arguments return tau-bench's "Error: ..." strings, and a write checks
everything before it changes anything, so it never half-applies.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from functools import cache
from typing import Any

from .._common import data_text as _data_text
from .._common import load_records

__all__ = ("READ_TOOLS", "WRITE_TOOLS", "RetailDB", "load_tasks", "task_reward")

READ_TOOLS = (
    "calculate",
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_order_details",
    "get_product_details",
    "get_user_details",
    "list_all_product_types",
    "transfer_to_human_agents",
)
WRITE_TOOLS = (
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
)


_PACKAGE = __name__.rpartition(".")[0]
TASK_FILES = {"test": "tasks_test_sample.json", "dev": "tasks_dev.json", "train": "tasks_train.json"}
"""The packaged task files by short name ("test": the 15-task test sample)."""


def data_text(name: str) -> str:
    """A file from the packaged tau-bench data (found from any directory)."""
    return _data_text(_PACKAGE, name)


@cache
def _pristine() -> dict[str, Any]:
    return {name: json.loads(data_text(f"{name}.json")) for name in ("users", "orders", "products")}


def load_tasks(path: str = "test") -> list[dict[str, Any]]:
    """Tasks in tau-bench's format (`tasks_dev.json`): user_id, instruction, actions.

    `path`: a task file, or a packaged one by name from any directory (`TASK_FILES`: "test", the
    default, "dev", "train", or their file names).
    """
    return load_records(
        path,
        "task",
        ["actions"],
        package=_PACKAGE,
        packaged=TASK_FILES,
    )


def task_reward(task: dict[str, Any], db: RetailDB) -> float:
    """tau-bench's reward: 1.0 when `db` equals a fresh database after the task's ground-truth actions."""
    truth = RetailDB()
    for action in task["actions"]:
        truth.call(action["name"], action.get("kwargs", {}))
    return 1.0 if truth.hash() == db.hash() else 0.0


class RetailDB:
    """An in-memory copy of the retail database with the 15 tools as methods."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = copy.deepcopy(data if data is not None else _pristine())
        self.users: dict[str, Any] = self.data["users"]
        self.orders: dict[str, Any] = self.data["orders"]
        self.products: dict[str, Any] = self.data["products"]
        self.writes = 0
        """Write tools that changed the database."""

    def hash(self) -> str:
        """A digest of the whole database (tau-bench's reward compares these)."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()

    def call(self, name: str, kwargs: dict[str, Any]) -> str:
        """Run tool `name`; unknown tools and bad arguments give an error string."""
        if name not in READ_TOOLS + WRITE_TOOLS:
            return f"Unknown action {name}"
        try:
            return str(getattr(self, name)(**kwargs))
        except TypeError as exc:
            return f"Error: {exc}"

    # ---- reads ---------------------------------------------------------------------------------

    def calculate(self, expression: str) -> str:
        """Calculate the result of a mathematical expression (numbers, + - * / ( ) . and spaces)."""
        if not all(c in "0123456789+-*/(). " for c in expression):
            return "Error: invalid characters in expression"
        try:
            return str(round(float(eval(expression, {"__builtins__": {}}, {})), 2))  # noqa: S307
        except Exception as exc:
            return f"Error: {exc}"

    def find_user_id_by_email(self, email: str) -> str:
        """Find user id by email."""
        for uid, user in self.users.items():
            if user["email"].lower() == email.lower():
                return uid
        return "Error: user not found"

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        """Find user id by first name, last name, and zip code."""
        for uid, user in self.users.items():
            if (
                user["name"]["first_name"].lower() == first_name.lower()
                and user["name"]["last_name"].lower() == last_name.lower()
                and user["address"]["zip"] == zip
            ):
                return uid
        return "Error: user not found"

    def get_order_details(self, order_id: str) -> str:
        """Get the status and details of an order."""
        if order_id not in self.orders:
            return "Error: order not found"
        return json.dumps(self.orders[order_id])

    def get_product_details(self, product_id: str) -> str:
        """Get the inventory details of a product."""
        if product_id not in self.products:
            return "Error: product not found"
        return json.dumps(self.products[product_id])

    def get_user_details(self, user_id: str) -> str:
        """Get the details of a user, including their orders."""
        if user_id not in self.users:
            return "Error: user not found"
        return json.dumps(self.users[user_id])

    def list_all_product_types(self) -> str:
        """List the name and product id of all product types (50 in the store)."""
        return json.dumps(dict(sorted((p["name"], p["product_id"]) for p in self.products.values())))

    def transfer_to_human_agents(self, summary: str) -> str:
        """Transfer the user to a human agent, with a summary of the user's issue."""
        return "Transfer successful"

    # ---- writes --------------------------------------------------------------------------------

    def _order(self, order_id: str, status: str, verb: str) -> dict[str, Any] | str:
        order = self.orders.get(order_id)
        if order is None:
            return "Error: order not found"
        if order["status"] != status:
            return f"Error: non-{status} order cannot be {verb}"
        return order

    def _payment(self, order: dict[str, Any], payment_method_id: str) -> dict[str, Any] | str:
        methods = self.users[order["user_id"]]["payment_methods"]
        if payment_method_id not in methods:
            return "Error: payment method not found"
        return methods[payment_method_id]

    @staticmethod
    def _items(order: dict[str, Any], item_ids: list[str]) -> str | None:
        have = [i["item_id"] for i in order["items"]]
        for item_id in item_ids:
            if item_ids.count(item_id) > have.count(item_id):
                return f"Error: {item_id} not found"
        return None

    def _swap(self, order: dict[str, Any], item_ids: list[str], new_item_ids: list[str]) -> float | str:
        """Price difference of swapping items for variants of the same product (no change made)."""
        if len(item_ids) != len(new_item_ids):
            return "Error: the number of items to be exchanged should match"
        diff = 0.0
        for item_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == item_id)
            variants = self.products[item["product_id"]]["variants"]
            if new_id not in variants or not variants[new_id]["available"]:
                return f"Error: new item {new_id} not found or available"
            diff += variants[new_id]["price"] - item["price"]
        return round(diff, 2)

    def _check_swap(
        self,
        order_id: str,
        status_verb: tuple[str, str],
        item_ids: list[str],
        new_item_ids: list[str],
        payment_method_id: str,
        paying_for: str,
    ) -> tuple[dict[str, Any], float, dict[str, Any]] | str:
        """Every check of an exchange or an item change, in tau-bench's order; nothing is changed."""
        order = self._order(order_id, *status_verb)
        if isinstance(order, str):
            return order
        bad = self._items(order, item_ids)
        if bad:
            return bad
        diff = self._swap(order, item_ids, new_item_ids)
        if isinstance(diff, str):
            return diff
        method = self._payment(order, payment_method_id)
        if isinstance(method, str):
            return method
        if method["source"] == "gift_card" and method["balance"] < diff:
            return f"Error: insufficient gift card balance to pay for {paying_for}"
        return order, diff, method

    def cancel_pending_order(self, order_id: str, reason: str) -> str:
        """Cancel a pending order ('no longer needed' or 'ordered by mistake'); refunds go back."""
        order = self._order(order_id, "pending", "cancelled")
        if isinstance(order, str):
            return order
        if reason not in ("no longer needed", "ordered by mistake"):
            return "Error: invalid reason"
        refunds = [
            {"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]}
            for p in order["payment_history"]
        ]
        methods = self.users[order["user_id"]]["payment_methods"]
        for r in refunds:
            method = methods.get(r["payment_method_id"])
            if method is not None and method["source"] == "gift_card":
                method["balance"] = round(method["balance"] + r["amount"], 2)
        order["status"] = "cancelled"
        order["cancel_reason"] = reason
        order["payment_history"].extend(refunds)
        self.writes += 1
        return json.dumps(order)

    def exchange_delivered_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> str:
        """Exchange items of a delivered order for other variants of the same products."""
        checked = self._check_swap(
            order_id,
            ("delivered", "exchanged"),
            item_ids,
            new_item_ids,
            payment_method_id,
            "the price difference",
        )
        if isinstance(checked, str):
            return checked
        order, diff, _ = checked
        order["status"] = "exchange requested"
        order["exchange_items"] = sorted(item_ids)
        order["exchange_new_items"] = sorted(new_item_ids)
        order["exchange_payment_method_id"] = payment_method_id
        order["exchange_price_difference"] = diff
        self.writes += 1
        return json.dumps(order)

    def modify_pending_order_address(
        self, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> str:
        """Change the shipping address of a pending order."""
        order = self._order(order_id, "pending", "modified")
        if isinstance(order, str):
            return order
        order["address"] = _address(address1, address2, city, state, country, zip)
        self.writes += 1
        return json.dumps(order)

    def modify_pending_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> str:
        """Swap items of a pending order for other variants of the same products (once per order)."""
        checked = self._check_swap(
            order_id, ("pending", "modified"), item_ids, new_item_ids, payment_method_id, "the new item"
        )
        if isinstance(checked, str):
            return checked
        order, diff, method = checked
        order["payment_history"].append(
            {
                "transaction_type": "payment" if diff > 0 else "refund",
                "amount": abs(diff),
                "payment_method_id": payment_method_id,
            }
        )
        if method["source"] == "gift_card":
            method["balance"] = round(method["balance"] - diff, 2)
        for item_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == item_id)
            variant = self.products[item["product_id"]]["variants"][new_id]
            item["item_id"], item["price"], item["options"] = new_id, variant["price"], variant["options"]
        order["status"] = "pending (item modified)"
        self.writes += 1
        return json.dumps(order)

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> str:
        """Pay a pending order with another of the user's payment methods."""
        order = self._order(order_id, "pending", "modified")
        if isinstance(order, str):
            return order
        method = self._payment(order, payment_method_id)
        if isinstance(method, str):
            return method
        history = order["payment_history"]
        if len(history) > 1 or history[0]["transaction_type"] != "payment":
            return "Error: there should be exactly one payment for a pending order"
        old_id, amount = history[0]["payment_method_id"], history[0]["amount"]
        if payment_method_id == old_id:
            return "Error: the new payment method should be different from the current one"
        if method["source"] == "gift_card" and method["balance"] < amount:
            return "Error: insufficient gift card balance to pay for the order"
        history.extend(
            [
                {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
                {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
            ]
        )
        methods = self.users[order["user_id"]]["payment_methods"]
        if method["source"] == "gift_card":
            method["balance"] = round(method["balance"] - amount, 2)
        old = methods.get(old_id)
        if old is not None and old["source"] == "gift_card":
            old["balance"] = round(old["balance"] + amount, 2)
        self.writes += 1
        return json.dumps(order)

    def modify_user_address(
        self, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> str:
        """Change a user's default address."""
        user = self.users.get(user_id)
        if user is None:
            return "Error: user not found"
        user["address"] = _address(address1, address2, city, state, country, zip)
        self.writes += 1
        return json.dumps(user)

    def return_delivered_order_items(self, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
        """Return items of a delivered order; the refund goes to the original method or a gift card."""
        order = self._order(order_id, "delivered", "returned")
        if isinstance(order, str):
            return order
        method = self._payment(order, payment_method_id)
        if isinstance(method, str):
            return method
        if (
            method["source"] != "gift_card"
            and payment_method_id != order["payment_history"][0]["payment_method_id"]
        ):
            return "Error: payment method should be either the original payment method or a gift card"
        bad = self._items(order, item_ids)
        if bad:
            return bad
        order["status"] = "return requested"
        order["return_items"] = sorted(item_ids)
        order["return_payment_method_id"] = payment_method_id
        self.writes += 1
        return json.dumps(order)


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict[str, str]:
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "state": state,
        "country": country,
        "zip": zip,
    }


ID = re.compile(r"^[a-z]+_[a-z]+_\d{4}$")
