"""What a ReAct run has shown the agent, read once per step, and the pool of candidate actions.

`Context` reads the question (its type, the noun it asks for, its words and
relation words) and the steps so far (searches, pages found, the last
observation's kind, the last thought's "find ..." plan); `Pool` merges
candidates by action, so an action proposed by two sources keeps both
sources' features.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ._text import (
    STOP,
    Span,
    content_words,
    head_noun,
    question_type,
    quoted,
    spans,
)

__all__ = (
    "Action",
    "Context",
    "Features",
    "Pool",
    "around",
    "bucket",
    "fold",
    "is_noun",
    "norm",
    "overlap",
    "question_names",
    "search_key",
)

Action = tuple[str, str]
Features = dict[str, float]
Step = dict[str, Any]

VERBS = {
    "born", "died", "known", "made", "written", "built", "held", "won", "run", "done", "seen", "sung",
    "play", "plays", "played", "star", "stars", "appear", "appears", "have", "has", "come", "came",
}  # fmt: skip
"""Verbs that may follow a name in a question ("X born"), never a noun of its title."""


def bucket(n: int, top: int) -> str:
    """`n` as a feature-name bucket: "0", "1", ..., "top+"."""
    return str(n) if n < top else f"{top}+"


def fold(text: str) -> str:
    """`text` without accents ("Jérôme" -> "Jerome")."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def norm(text: str) -> str:
    """`text` lower-cased, quotes and extra spaces dropped."""
    return re.sub(r"\s+", " ", text.strip().strip('"“”').strip()).lower()


def search_key(text: str) -> str:
    """`text` as a search is remembered: normalised, without a leading "the"."""
    return re.sub(r"^the\s+", "", norm(text))


@dataclass
class Context:
    """What the agent has seen before its next action, read once for all candidates."""

    question: str
    steps: list[Step]
    qtype: str = ""
    head: str = ""
    qwords: set[str] = field(default_factory=set)
    searched: list[str] = field(default_factory=list)
    found: int = 0
    last_kind: str = "none"
    page: str = ""
    page_text: str = ""
    plan_words: set[str] = field(default_factory=set)
    relwords: set[str] = field(default_factory=set)
    prep: str = ""
    earlier_text: str = ""

    def __post_init__(self) -> None:
        self.qtype = question_type(self.question)
        self.head = head_noun(self.question) if self.qtype not in ("either", "yesno") else ""
        self.qwords = content_words(self.question)
        named = " ".join(n for n, _ in question_names(self.question))
        self.relwords = self.qwords - content_words(named)
        m = re.search(r"\b(in|from|at|by|on|for|with|of|to)\s+(?:what|which|whom|who)\b", self.question, re.I)
        self.prep = m.group(1).lower() if m else ""
        self.searched = [search_key(str(s.get("arg", ""))) for s in self.steps if s.get("tool") == "Search"]
        for s in self.steps:
            obs = str(s.get("observation", ""))
            if s.get("tool") == "Search" and not obs.startswith("Could not find"):
                self.found += 1
                self.page, self.page_text = str(s.get("arg", "")), obs
        found = [
            s for s in self.steps if s.get("tool") == "Search" and s.get("observation") != self.page_text
        ]
        self.earlier_text = " ".join(
            [str(s.get("observation", "")) for s in found if not str(s["observation"]).startswith("Could")]
            + [str(s.get("thought", "")) for s in self.steps]
        )
        last = self.steps[-1] if self.steps else None
        if last is not None:
            wanted = re.findall(r"\bfind (?:out )?(.+?)(?:,|\.|;| then |$)", str(last.get("thought", "")))
            self.plan_words = content_words(" ".join(wanted))
            obs = str(last.get("observation", ""))
            tool = str(last.get("tool", ""))
            self.last_kind = (
                "fail"
                if obs.startswith("Could not find")
                else "found"
                if tool == "Search"
                else "lookup"
                if tool == "Lookup"
                else "other"
            )

    @property
    def thoughts(self) -> list[str]:
        """The agent's thoughts so far, in order."""
        return [str(s.get("thought", "")) for s in self.steps]


def question_names(question: str) -> list[tuple[str, Features]]:
    """Names the question mentions, each with features (quoted, multi-word, position, cut)."""
    out: list[tuple[str, Features]] = []
    for q in quoted(question):
        out.append((q, {"quotedname": 1.0}))
        out.append((f'"{q}"', {"quotedname": 1.0, "withquotes": 1.0}))
    text = re.sub(r"\"[^\"]+\"|“[^”]+”", " . ", question)
    n = 0
    for sp in spans(text):
        if sp.kind in ("year", "number", "date"):
            continue
        if sp.kind == "name-opener" and sp.text.split()[0].lower() in STOP - {"the", "a", "an"}:
            continue  # "Is Velvetpark": a question word, not a title's "The"
        feats: Features = {f"cut.{sp.kind}": 1.0, "pos": 1.0 - sp.start / max(1, len(text))}
        if sp.start == 0 or text[: sp.start].strip() in ("The", "the"):
            feats["opens"] = 1.0
        feats[f"rank{bucket(n, 3)}"] = 1.0
        n += 1
        out.append((sp.text, feats))
        possessive = re.search(re.escape(sp.text) + r"['’]s?\s", text) is not None
        if sp.kind in ("name", "name-poss") and is_noun(sp.after) and not possessive:
            out.append((f"{sp.text} {sp.after}", {**feats, "plusnoun": 1.0}))
    for q in quoted(question):
        m = re.search(rf"[\"“]{re.escape(q)}[\"”]\s+([a-z]{{3,}})", question)
        if m and is_noun(m.group(1)):
            out.append((f'"{q}" {m.group(1)}', {"quotedname": 1.0, "withquotes": 1.0, "plusnoun": 1.0}))
    if not out:  # no names at all: the question's own words ("the chicken", "dance pattern")
        words = re.findall(r"[a-z][a-z'\-]+", question.lower())
        for n in (2, 1, 3):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0] not in STOP and gram[-1] not in STOP and len(out) < 12:
                    out.append((" ".join(gram), {"words": 1.0, f"words{n}": 1.0}))
    return out


def is_noun(word: str) -> bool:
    """A lower-case word that may end a title ("Shape magazine"), not a verb or a function word."""
    return (
        bool(re.fullmatch(r"[a-z]{3,}", word))
        and word not in STOP
        and word not in VERBS
        and not word.endswith("ed")
    )


def overlap(words: set[str], text: str, own: str = "") -> float:
    """The share of `words` found in `text`, not counting the candidate's `own` words."""
    c = content_words(text) - content_words(own)
    return len(c & words) / max(1, len(words - content_words(own)))


def around(text: str, sp: Span, width: int = 40) -> str:
    """The `width` characters of `text` either side of `sp`, and `sp` itself."""
    return text[max(0, sp.start - width) : sp.start + len(sp.text) + width]


class Pool:
    """Candidates merged by action: the same action from two sources keeps both sources' features."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.items: dict[Action, Features] = {}

    def add(self, tool: str, arg: str, feats: Features) -> None:
        """Propose `tool[arg]` with `feats` (merged, by maximum, with the features it already has)."""
        arg = arg.strip()
        if not arg or (tool != "Finish" and len(arg) < 2) or len(arg) > 120:
            return
        f = self.items.setdefault((tool, arg), {})
        for key, value in feats.items():
            f[key] = max(f.get(key, value), value)

    def finish(self) -> dict[Action, Features]:
        """Every candidate with the features any candidate has (length, where else it occurs)."""
        ctx = self.ctx
        thoughts = " ".join(ctx.thoughts).lower()
        last_thought = ctx.thoughts[-1].lower() if ctx.thoughts else ""
        last_obs = str(ctx.steps[-1].get("observation", "")).lower() if ctx.steps else ""
        q = ctx.question.lower()
        for (tool, arg), f in self.items.items():
            t = tool[0]
            low, nw = norm(arg), len(arg.split())
            generic = {f"{t}.nw{bucket(nw, 4)}": 1.0}
            if low and low in q:
                generic[f"{t}.inq"] = 1.0
                if t == "F" and ctx.qtype not in ("either", "yesno"):
                    generic["F.inq.open"] = 1.0
            if low and low in thoughts:
                generic[f"{t}.inthought"] = 1.0
            if low and low in last_thought:
                generic[f"{t}.inlastthought"] = 1.0
            if low and low in last_obs:
                generic[f"{t}.inlastobs"] = 1.0
            if tool == "Search":
                if search_key(arg) in ctx.searched:
                    generic["S.searched"] = 1.0
                    generic[f"S.searched@{ctx.last_kind}"] = 1.0
                if arg.startswith('"'):
                    generic["S.quoted"] = 1.0
                if "(" in arg:
                    generic["S.paren"] = 1.0
            for key, value in generic.items():
                f.setdefault(key, value)
            for src in [k.split(".", 2)[2] for k in list(f) if k.startswith(f"{t}.src.") and "@" not in k]:
                f[f"{t}.src.{src}@{ctx.last_kind}"] = 1.0
        return self.items
