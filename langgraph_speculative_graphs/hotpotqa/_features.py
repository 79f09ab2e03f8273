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

import difflib
import re
from collections.abc import Iterable

from ._answers import finish_candidates
from ._context import (
    Action,
    Context,
    Features,
    Pool,
    Step,
    around,
    bucket,
    fold,
    norm,
    overlap,
    question_names,
    search_key,
)
from ._text import (
    STOP,
    content_words,
    plans,
    similar_titles,
    spans,
    stem,
)

__all__ = ("Action", "Context", "Features", "candidates", "tool_features")

FIND = re.compile(r"\bfind (?:the |his |her |its |their |out )?([a-z]+(?: [a-z]+)?)")
QUALIFIERS = (
    "film", "band", "album", "song", "book", "novel", "magazine", "musician", "singer", "actor", "actress",
    "TV series", "play", "company", "video game", "group", "series",
)  # fmt: skip


def _search(pool: Pool, ctx: Context) -> None:
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
        nq = norm(query)
        context_words = ctx.qwords | content_words(" ".join(ctx.thoughts[-1:]))
        closeness = [_closeness(query, title) for title in titles]
        best = max(closeness, default=0.0)
        for r, title in enumerate(titles):
            feats = {"S.src.sim": 1.0, f"S.sim.r{bucket(r, 4)}": 1.0, "S.sim.close": closeness[r]}
            if closeness[r] == best:
                feats["S.sim.closest"] = 1.0
            nt = norm(title)
            if nt == nq:
                feats["S.sim.eqq"] = 1.0
            elif nq and nq in nt:
                feats["S.sim.hasq"] = 1.0
            elif nt in nq:
                feats["S.sim.inq"] = 1.0
            feats["S.sim.qov"] = overlap(context_words, title)
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
                    pool.add("Search", sp.text, {"S.src.simpart": 1.0, f"S.simpart.r{bucket(r, 4)}": 1.0})
        bare = query.strip().strip('"“”')
        if bare != query.strip():
            pool.add("Search", bare, {"S.src.var": 1.0, "S.var.unquote": 1.0})
        else:
            pool.add("Search", f'"{bare}"', {"S.src.var": 1.0, "S.var.quote": 1.0})
        for word in QUALIFIERS:
            if re.search(rf"\b{word}", ctx.question, re.I) and "(" not in bare:
                pool.add("Search", f"{bare} ({word})", {"S.src.var": 1.0, "S.var.paren": 1.0})
    if last.get("tool") == "Search":
        again = search_key(str(last.get("arg", "")))
        times = ctx.searched.count(again)
        pool.add("Search", str(last.get("arg", "")), {"S.src.rep": 1.0, f"S.rep.n{bucket(times, 3)}": 1.0})
    if ctx.last_kind == "found" or ctx.last_kind == "lookup":
        text = ctx.page_text if ctx.last_kind == "found" else obs
        page = norm(ctx.page)
        names = [sp for sp in spans(text) if sp.kind.startswith("name") or sp.kind == "pair"]
        seen: list[str] = []
        for sp in names:
            if sp.text not in seen:
                seen.append(sp.text)
            r = seen.index(sp.text)
            low = norm(sp.text)
            feats = {
                "S.src.obs": 1.0,
                f"S.obs.{sp.kind}": 1.0,
                f"S.obs.r{bucket(r, 6)}": 1.0,
                "S.obs.near": overlap(ctx.qwords, around(text, sp), sp.text),
                "S.obs.rel": float(
                    bool(ctx.relwords & content_words(text[max(0, sp.start - 50) : sp.start]))
                ),
                "S.obs.sentov": overlap(ctx.qwords, sp.sentence_text, sp.text),
            }
            if ctx.plan_words:
                feats["S.obs.plannear"] = overlap(ctx.plan_words, around(text, sp), sp.text)
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


def _closeness(query: str, title: str) -> float:
    """How close a "Similar:" title is to the query that failed (0..1): their accent-free, lower-case
    spellings compared character by character, the title's "(disambiguation)" left out."""
    base = re.sub(r"\s*\([^)]*\)\s*$", "", title)
    return difflib.SequenceMatcher(None, fold(norm(query)), fold(norm(base))).ratio()


def _lookup(pool: Pool, ctx: Context) -> None:
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


def tool_features(ctx: Context, options: dict[Action, Features]) -> dict[str, Features]:
    """Features of each tool that has candidates, for the choice of the next tool.

    The state of the run (steps, pages found, the last observation's kind, the
    question's type), whether the thoughts plan a Search not done yet, whether
    an answer of the question's type is on the page, and whether the question's
    names were all searched.
    """
    planned = any(
        search_key(target) not in ctx.searched
        for thought in ctx.thoughts[-1:]
        for verb, target, _ in plans(thought)
        if verb == "Search"
    )
    typed = any(
        a[0] == "Finish" and f.get("F.compat", 0) >= 1 and f.get("F.src.obs") for a, f in options.items()
    )
    names = [n for n, f in question_names(ctx.question) if not f.get("withquotes")][:2]
    both = bool(names) and all(search_key(n) in ctx.searched for n in names)
    context = {
        "": 1.0,
        f"@{ctx.last_kind}": 1.0,
        f"@n{bucket(len(ctx.steps), 4)}": 1.0,
        f"@found{bucket(ctx.found, 3)}": 1.0,
        f"@q.{ctx.qtype}": 1.0,
        f"@q.{ctx.qtype}@found{bucket(ctx.found, 3)}": 1.0,
    }
    if planned:
        context["@planned"] = 1.0
    if typed:
        context["@typed"] = 1.0
        context[f"@typed@found{bucket(ctx.found, 3)}"] = 1.0
    if both:
        context["@bothsearched"] = 1.0
        context[f"@bothsearched@q.{ctx.qtype}"] = 1.0
    tools = sorted({tool for tool, _ in options})
    return {tool: {f"T.{tool[0]}{k}": v for k, v in context.items()} for tool in tools}


def candidates(question: str, steps: Iterable[Step]) -> tuple[dict[str, Features], dict[Action, Features]]:
    """(features of each tool, every candidate action with its features), from what the agent has seen."""
    ctx = Context(question, list(steps))
    pool = Pool(ctx)
    _search(pool, ctx)
    _lookup(pool, ctx)
    finish_candidates(pool, ctx)
    options = pool.finish()
    return tool_features(ctx, options), options
