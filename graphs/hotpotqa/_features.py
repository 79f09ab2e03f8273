"""Candidate next actions of a ReAct run, each with the features a learned ranker scores.

From what the agent has seen (the question, its earlier thoughts, actions and
observations) this proposes:

- Search: names of the question, targets the earlier thoughts planned ("search X
  and Y"), names the thoughts mention, the titles a "Similar:" list offers, names
  of the last paragraph (with how close they sit to the question's words), the
  last query again and its variants (quotes dropped or added);
- Lookup: keywords of the question (and of the thoughts' plans) missing from
  the fetched paragraph;
- Finish: yes/no, the two sides of an either/or question, names, dates, years
  and numbers of the last paragraphs and the thoughts (typed against the
  question's type and the noun it asks for), the page just read.

Features are generic (sources, ranks, word overlaps, types); their weights are
learned (`_ranker.py`), not written per question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._gazetteer import COUNTRIES, US_STATES
from ._text import (
    STOP,
    YES_NO,
    Span,
    content_words,
    head_noun,
    plans,
    question_type,
    quoted,
    similar_titles,
    spans,
    stem,
)

__all__ = ("Action", "Context", "Features", "candidates", "tool_features")

Action = tuple[str, str]
Features = dict[str, float]
Step = dict[str, Any]

FIND = re.compile(r"\bfind (?:the |his |her |its |their |out )?([a-z]+(?: [a-z]+)?)")
QUALIFIERS = (
    "film", "band", "album", "song", "book", "novel", "magazine", "musician", "singer", "actor", "actress",
    "TV series", "play", "company", "video game", "group", "series",
)  # fmt: skip


VERBS = {
    "born", "died", "known", "made", "written", "built", "held", "won", "run", "done", "seen", "sung",
    "play", "plays", "played", "star", "stars", "appear", "appears", "have", "has", "come", "came",
}  # fmt: skip
"""Verbs that may follow a name in a question ("X born"), never a noun of its title."""


def _bucket(n: int, top: int) -> str:
    return str(n) if n < top else f"{top}+"


def fold(text: str) -> str:
    """`text` without accents ("Jérôme" -> "Jerome")."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip('"“”').strip()).lower()


def _key(text: str) -> str:
    """`text` as a search is remembered: normalised, without a leading "the"."""
    return re.sub(r"^the\s+", "", _norm(text))


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
        self.searched = [_key(str(s.get("arg", ""))) for s in self.steps if s.get("tool") == "Search"]
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
        feats[f"rank{_bucket(n, 3)}"] = 1.0
        n += 1
        out.append((sp.text, feats))
        possessive = re.search(re.escape(sp.text) + r"['’]s?\s", text) is not None
        if sp.kind in ("name", "name-poss") and _noun(sp.after) and not possessive:
            out.append((f"{sp.text} {sp.after}", {**feats, "plusnoun": 1.0}))
    for q in quoted(question):
        m = re.search(rf"[\"“]{re.escape(q)}[\"”]\s+([a-z]{{3,}})", question)
        if m and _noun(m.group(1)):
            out.append((f'"{q}" {m.group(1)}', {"quotedname": 1.0, "withquotes": 1.0, "plusnoun": 1.0}))
    if not out:  # no names at all: the question's own words ("the chicken", "dance pattern")
        words = re.findall(r"[a-z][a-z'\-]+", question.lower())
        for n in (2, 1, 3):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0] not in STOP and gram[-1] not in STOP and len(out) < 12:
                    out.append((" ".join(gram), {"words": 1.0, f"words{n}": 1.0}))
    return out


def _noun(word: str) -> bool:
    """A lower-case word that may end a title ("Shape magazine"), not a verb or a function word."""
    return (
        bool(re.fullmatch(r"[a-z]{3,}", word))
        and word not in STOP
        and word not in VERBS
        and not word.endswith("ed")
    )


def _overlap(words: set[str], text: str, own: str = "") -> float:
    """The share of `words` found in `text`, not counting the candidate's `own` words."""
    c = content_words(text) - content_words(own)
    return len(c & words) / max(1, len(words - content_words(own)))


def _window(text: str, sp: Span, width: int = 40) -> str:
    return text[max(0, sp.start - width) : sp.start + len(sp.text) + width]


class _Pool:
    """Candidates merged by action: the same action from two sources keeps both sources' features."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.items: dict[Action, Features] = {}

    def add(self, tool: str, arg: str, feats: Features) -> None:
        arg = arg.strip()
        if not arg or (tool != "Finish" and len(arg) < 2) or len(arg) > 120:
            return
        f = self.items.setdefault((tool, arg), {})
        for key, value in feats.items():
            f[key] = max(f.get(key, value), value)

    def finish(self) -> dict[Action, Features]:
        ctx = self.ctx
        thoughts = " ".join(ctx.thoughts).lower()
        last_thought = ctx.thoughts[-1].lower() if ctx.thoughts else ""
        last_obs = str(ctx.steps[-1].get("observation", "")).lower() if ctx.steps else ""
        q = ctx.question.lower()
        for (tool, arg), f in self.items.items():
            t = tool[0]
            low, nw = _norm(arg), len(arg.split())
            generic = {f"{t}.nw{_bucket(nw, 4)}": 1.0}
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
                if _key(arg) in ctx.searched:
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


def _search(pool: _Pool, ctx: Context) -> None:
    for name, feats in question_names(ctx.question):
        pool.add("Search", name, {"S.src.q": 1.0, **{f"S.q.{k}": v for k, v in feats.items()}})
    for i, thought in enumerate(ctx.thoughts):
        recent = "last" if i == len(ctx.thoughts) - 1 else "earlier"
        for j, (verb, target, whole) in enumerate(plans(thought)):
            tool = "Lookup" if verb == "Lookup" else "Search"
            t = tool[0]
            feats = {f"{t}.src.plan": 1.0, f"{t}.plan.{recent}": 1.0, f"{t}.plan.{j and 1}": 1.0}
            feats[f"{t}.plan.{'whole' if whole else 'piece'}"] = 1.0
            pool.add(tool, target, feats)
        for sp in spans(thought):
            if sp.kind.startswith("name"):
                pool.add("Search", sp.text, {"S.src.th": 1.0, f"S.th.{recent}": 1.0, f"S.th.{sp.kind}": 1.0})
    last = ctx.steps[-1] if ctx.steps else None
    if last is None:
        return
    obs = str(last.get("observation", ""))
    sim = similar_titles(obs)
    if sim is not None:
        query, titles = sim
        nq = _norm(query)
        context_words = ctx.qwords | content_words(" ".join(ctx.thoughts[-1:]))
        for r, title in enumerate(titles):
            feats = {"S.src.sim": 1.0, f"S.sim.r{_bucket(r, 4)}": 1.0}
            nt = _norm(title)
            if nt == nq:
                feats["S.sim.eqq"] = 1.0
            elif nq and nq in nt:
                feats["S.sim.hasq"] = 1.0
            elif nt in nq:
                feats["S.sim.inq"] = 1.0
            feats["S.sim.qov"] = _overlap(context_words, title)
            if fold(nt) == fold(nq) and nt != nq:
                feats["S.sim.accent"] = 1.0
            initials = "".join(w[0] for w in re.findall(r"[A-Za-z]\w*", title) if w[0].isupper())
            if len(nq) >= 2 and initials.lower() == nq.replace(".", ""):
                feats["S.sim.acronym"] = 1.0
            if nq.split() and nt.split() and nt.split()[0] == nq.split()[0] and nt != nq:
                feats["S.sim.prefix"] = 1.0
            paren = re.search(r"\(([^)]*)\)", title)
            if paren:
                feats["S.sim.paren"] = 1.0
                if content_words(paren.group(1)) & (ctx.qwords | content_words(" ".join(ctx.thoughts))):
                    feats["S.sim.parenq"] = 1.0
            pool.add("Search", title, feats)
            if query.strip().startswith('"'):
                pool.add("Search", f'"{title}"', {**feats, "S.sim.requote": 1.0})
            carried = re.search(r"\s\([^)]*\)$", query)
            if carried and "(" not in title and r < 4:
                pool.add("Search", title + carried.group(0), {**feats, "S.sim.carry": 1.0})
            for sp in spans(title):
                if sp.kind.startswith("name") and sp.text != title and len(sp.text.split()) > 1:
                    pool.add("Search", sp.text, {"S.src.simpart": 1.0, f"S.simpart.r{_bucket(r, 4)}": 1.0})
        bare = query.strip().strip('"“”')
        if bare != query.strip():
            pool.add("Search", bare, {"S.src.var": 1.0, "S.var.unquote": 1.0})
        else:
            pool.add("Search", f'"{bare}"', {"S.src.var": 1.0, "S.var.quote": 1.0})
        for word in QUALIFIERS:
            if re.search(rf"\b{word}", ctx.question, re.I) and "(" not in bare:
                pool.add("Search", f"{bare} ({word})", {"S.src.var": 1.0, "S.var.paren": 1.0})
    if last.get("tool") == "Search":
        again = _key(str(last.get("arg", "")))
        times = ctx.searched.count(again)
        pool.add("Search", str(last.get("arg", "")), {"S.src.rep": 1.0, f"S.rep.n{_bucket(times, 3)}": 1.0})
    if ctx.last_kind == "found" or ctx.last_kind == "lookup":
        text = ctx.page_text if ctx.last_kind == "found" else obs
        page = _norm(ctx.page)
        names = [sp for sp in spans(text) if sp.kind.startswith("name") or sp.kind == "pair"]
        seen: list[str] = []
        for sp in names:
            if sp.text not in seen:
                seen.append(sp.text)
            r = seen.index(sp.text)
            low = _norm(sp.text)
            feats = {
                "S.src.obs": 1.0,
                f"S.obs.{sp.kind}": 1.0,
                f"S.obs.r{_bucket(r, 6)}": 1.0,
                "S.obs.near": _overlap(ctx.qwords, _window(text, sp), sp.text),
                "S.obs.rel": float(
                    bool(ctx.relwords & content_words(text[max(0, sp.start - 50) : sp.start]))
                ),
                "S.obs.sentov": _overlap(ctx.qwords, sp.sentence_text, sp.text),
            }
            if ctx.plan_words:
                feats["S.obs.plannear"] = _overlap(ctx.plan_words, _window(text, sp), sp.text)
            if ctx.head and ctx.head in {stem(w) for w in sp.text.split()}:
                feats["S.obs.head"] = 1.0
            bare_low = re.sub(r"^the ", "", low)
            if bare_low == re.sub(r"^the ", "", page) or low in page or page in low:
                feats["S.obs.page"] = 1.0
            elif len(set(low.split()) & set(page.split())) * 2 >= len(page.split()):
                feats["S.obs.pagelike"] = 1.0
            if sp.before == "" and len(sp.text.split()) == 1:
                feats["S.obs.initial1"] = 1.0
            pool.add("Search", sp.text, feats)


def _lookup(pool: _Pool, ctx: Context) -> None:
    if ctx.last_kind not in ("found", "lookup"):
        return
    page = ctx.page_text.lower()
    words = [w for w in re.findall(r"[a-z][a-z'\-]+", ctx.question.lower())]
    grams: list[tuple[str, int]] = []
    for i, w in enumerate(words):
        if w not in STOP and len(w) > 2:
            grams.append((w, 1))
            if i + 1 < len(words) and words[i + 1] not in STOP:
                grams.append((f"{w} {words[i + 1]}", 2))
            if i + 1 < len(words) and words[i + 1] in ("by", "at", "in", "of"):
                grams.append((f"{w} {words[i + 1]}", 2))
    for gram, n in grams:
        missing = gram not in page
        pool.add(
            "Lookup", gram, {"L.src.q": 1.0, f"L.q.{n}": 1.0, "L.q.missing" if missing else "L.q.seen": 1.0}
        )
    for thought in ctx.thoughts[-1:]:
        for m in FIND.finditer(thought):
            pool.add("Lookup", m.group(1), {"L.src.find": 1.0})


LIFESPAN = re.compile(r"\(([^()]*?\d{3,4}[^()]*?)\s[–-]\s([^()]*?\d{3,4}[^()]*?)\)")


def _lifespan_side(text: str, sp: Span) -> str:
    """ "birth" or "death" when `sp` is a date of the "(8 May 1921 – 1 June 1990)" after a page's subject."""
    m = LIFESPAN.search(text[:300])
    if not m:
        return ""
    if m.start(1) <= sp.start < m.end(1):
        return "birth"
    if m.start(2) <= sp.start < m.end(2):
        return "death"
    return ""


def compatible(qtype: str, kind: str, words: int) -> float:
    """How well an answer of `kind` (and `words` long) fits a question of `qtype` (a fixed prior)."""
    table = {
        "yesno": {"yn": 1.0},
        "either": {"qent": 1.0, "yn": 0.5},
        "year": {"year": 1.0, "date": 0.5},
        "date": {"date": 1.0, "year": 0.5},
        "number": {"number": 1.0},
        "person": {"name": 1.0 if words >= 2 else 0.5},
        "place": {"name": 1.0, "pair": 1.0},
        "thing": {"name": 1.0, "pair": 0.5, "desc": 0.5},
    }
    return table.get(qtype, {}).get(kind, 0.0)


def _finish_spans(pool: _Pool, ctx: Context, text: str, where: str) -> None:
    head = ctx.head
    by_kind: dict[str, list[str]] = {}
    for sp in spans(text):
        kind = "name" if sp.kind.startswith("name") else sp.kind
        seen = by_kind.setdefault(kind, [])
        if sp.text not in seen:
            seen.append(sp.text)
        r = seen.index(sp.text)
        window = _window(text, sp)
        feats: Features = {
            f"F.src.{where}": 1.0,
            f"F.kind.{kind}": 1.0,
            f"F.cut.{sp.kind}": 1.0,
            "F.compat": compatible(ctx.qtype, kind, len(sp.text.split())),
            f"F.r{_bucket(r, 4)}": 1.0,
            f"F.sent{_bucket(sp.sentence, 3)}": 1.0,
            "F.near": _overlap(ctx.qwords, window, sp.text),
            "F.rel": float(bool(ctx.relwords & content_words(text[max(0, sp.start - 50) : sp.start]))),
            "F.sentov": _overlap(ctx.qwords, sp.sentence_text, sp.text),
        }
        if head:
            if head in {stem(w) for w in sp.text.split()}:
                feats["F.head.in"] = 1.0
            elif head in content_words(window):
                feats["F.head.near"] = 1.0
        if sp.after == "(":
            feats["F.then-paren"] = 1.0
        if sp.before == "," and re.search(r"[A-Z][\w'’\-]*,\s*$", text[: sp.start]):
            feats["F.pair2"] = 1.0
            if ctx.qtype == "place":
                feats["F.pair2@place"] = 1.0
        count = text.count(sp.text)
        feats["F.count"] = min(3, count) / 3.0
        if ctx.plan_words:
            feats["F.plannear"] = _overlap(ctx.plan_words, window, sp.text)
        if _key(sp.text) in ctx.searched:
            feats["F.searched"] = 1.0
        if ctx.prep and sp.before == ctx.prep:
            feats["F.prep"] = 1.0
        if sp.before == "" and len(sp.text.split()) == 1:
            feats["F.initial1"] = 1.0
        if kind in ("year", "date"):
            side = _lifespan_side(text, sp)
            if side:
                asks = "birth" if re.search(r"\bborn\b|\bbirth", ctx.question, re.I) else "other"
                feats[f"F.life.{side}@{asks}"] = 1.0
        gazetteer = US_STATES if head == "state" else COUNTRIES if head in ("country", "nation") else None
        if gazetteer is not None:
            feats["F.gaz.in" if sp.text in gazetteer else "F.gaz.out"] = 1.0
        if where == "obs" and sp.text in ctx.earlier_text:
            feats["F.shared"] = 1.0
        pool.add("Finish", sp.text, feats)


DESCRIPTION = re.compile(
    r"\b(?:is|was|are|were) (?:an?|the) ((?:[\w\-]+ ){0,4}?[a-z][\w\-]+)"
    r"(?= of\b| in\b| from\b| who\b| that\b|[,.;(])"
)


def _descriptions(pool: _Pool, ctx: Context, text: str) -> None:
    """What the paragraph says its subject is ("is an American writer of" -> "writer", "American writer")."""
    for m in DESCRIPTION.finditer(text[:400]):
        words = m.group(1).split()
        for n in range(1, min(4, len(words)) + 1):
            feats: Features = {
                "F.src.desc": 1.0,
                f"F.desc.{n}": 1.0,
                "F.compat": compatible(ctx.qtype, "desc", n),
            }
            if ctx.head and ctx.head == stem(words[-1]):
                feats["F.head.in"] = 1.0
            pool.add("Finish", " ".join(words[-n:]), feats)


def _first_names(pool: _Pool, ctx: Context, text: str) -> None:
    if not re.search(r"\b(?:first|given|middle|birth) name\b", ctx.question, re.I):
        return
    for sp in spans(text):
        if sp.kind == "name" and len(sp.text.split()) >= 2:
            pool.add("Finish", sp.text.split()[0], {"F.src.firstname": 1.0})


def _finish(pool: _Pool, ctx: Context) -> None:
    if not ctx.steps:
        return
    for answer in ("yes", "no"):
        compat = (
            compatible(ctx.qtype, "yn", 1) if ctx.qtype != "either" or YES_NO.match(ctx.question) else 0.0
        )
        pool.add("Finish", answer, {"F.src.yn": 1.0, f"F.yn.{answer}": 1.0, "F.compat": compat})
    names = question_names(ctx.question) if ctx.qtype == "either" else []
    ordered = [n for n, f in names if not f.get("withquotes")]
    for i, name in enumerate(ordered[:6]):
        feats: Features = {
            "F.src.qent": 1.0,
            f"F.qent.r{_bucket(i, 3)}": 1.0,
            "F.compat": compatible(ctx.qtype, "qent", 1),
        }
        if _key(name) in ctx.searched:
            feats["F.qent.searched"] = 1.0
        pool.add("Finish", name, feats)
    found = [
        s for s in ctx.steps if s.get("tool") == "Search" and not str(s["observation"]).startswith("Could")
    ]
    if found:
        _finish_spans(pool, ctx, str(found[-1]["observation"]), "obs")
        _descriptions(pool, ctx, str(found[-1]["observation"]))
        _first_names(pool, ctx, str(found[-1]["observation"]))
        page = str(found[-1]["arg"])
        feats = {"F.src.page": 1.0, "F.compat": compatible(ctx.qtype, "name", len(page.split()))}
        if ctx.head and ctx.head in {stem(w) for w in page.split()}:
            feats["F.page.head"] = 1.0
        pool.add("Finish", page.strip('"'), feats)
    for s in found[-3:-1]:
        _finish_spans(pool, ctx, str(s["observation"]), "prev")
    last = ctx.steps[-1]
    if last.get("tool") == "Lookup":
        _finish_spans(pool, ctx, str(last.get("observation", "")), "look")
    for thought in ctx.thoughts[-2:]:
        _finish_spans(pool, ctx, thought, "th")


def tool_features(ctx: Context, options: dict[Action, Features]) -> dict[str, Features]:
    """Features of each tool that has candidates, for the choice of the next tool.

    The state of the run (steps, pages found, the last observation's kind, the
    question's type), whether the thoughts plan a Search not done yet, whether
    an answer of the question's type is on the page, and whether the question's
    names were all searched.
    """
    planned = any(
        _key(target) not in ctx.searched
        for thought in ctx.thoughts[-1:]
        for verb, target, _ in plans(thought)
        if verb == "Search"
    )
    typed = any(
        a[0] == "Finish" and f.get("F.compat", 0) >= 1 and f.get("F.src.obs") for a, f in options.items()
    )
    names = [n for n, f in question_names(ctx.question) if not f.get("withquotes")][:2]
    both = bool(names) and all(_key(n) in ctx.searched for n in names)
    context = {
        "": 1.0,
        f"@{ctx.last_kind}": 1.0,
        f"@n{_bucket(len(ctx.steps), 4)}": 1.0,
        f"@found{_bucket(ctx.found, 3)}": 1.0,
        f"@q.{ctx.qtype}": 1.0,
        f"@q.{ctx.qtype}@found{_bucket(ctx.found, 3)}": 1.0,
    }
    if planned:
        context["@planned"] = 1.0
    if typed:
        context["@typed"] = 1.0
        context[f"@typed@found{_bucket(ctx.found, 3)}"] = 1.0
    if both:
        context["@bothsearched"] = 1.0
        context[f"@bothsearched@q.{ctx.qtype}"] = 1.0
    tools = sorted({tool for tool, _ in options})
    return {tool: {f"T.{tool[0]}{k}": v for k, v in context.items()} for tool in tools}


def candidates(question: str, steps: Iterable[Step]) -> tuple[dict[str, Features], dict[Action, Features]]:
    """(features of each tool, every candidate action with its features), from what the agent has seen."""
    ctx = Context(question, list(steps))
    pool = _Pool(ctx)
    _search(pool, ctx)
    _lookup(pool, ctx)
    _finish(pool, ctx)
    options = pool.finish()
    return tool_features(ctx, options), options
