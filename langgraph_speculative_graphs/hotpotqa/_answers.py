"""Finish candidates: the answers a ReAct agent may give, typed against its question.

yes/no (alone, for a yes/no question); the two sides of an either/or question
(with yes/no, alone, for such a question); names, dates, years and
numbers of the last paragraphs, the Lookup result and the thoughts (with the
question's type, the noun it asks for, the relation words before them, a
state/country gazetteer, and which side of a lifespan a date is on); what the
paragraph says its subject is ("an American writer"); first names when the
question asks for one; the page just read.
"""

from __future__ import annotations

import re

from ._context import Context, Features, Pool, around, bucket, overlap, question_names, search_key
from ._gazetteer import COUNTRIES, US_STATES
from ._text import (
    YES_NO,
    Span,
    content_words,
    spans,
    stem,
)

__all__ = ("compatible", "finish_candidates")


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


def _finish_spans(pool: Pool, ctx: Context, text: str, where: str) -> None:
    head = ctx.head
    by_kind: dict[str, list[str]] = {}
    for sp in spans(text):
        kind = "name" if sp.kind.startswith("name") else sp.kind
        seen = by_kind.setdefault(kind, [])
        if sp.text not in seen:
            seen.append(sp.text)
        r = seen.index(sp.text)
        window = around(text, sp)
        feats: Features = {
            f"F.src.{where}": 1.0,
            f"F.kind.{kind}": 1.0,
            f"F.cut.{sp.kind}": 1.0,
            "F.compat": compatible(ctx.qtype, kind, len(sp.text.split())),
            f"F.r{bucket(r, 4)}": 1.0,
            f"F.sent{bucket(sp.sentence, 3)}": 1.0,
            "F.near": overlap(ctx.qwords, window, sp.text),
            "F.rel": float(bool(ctx.relwords & content_words(text[max(0, sp.start - 50) : sp.start]))),
            "F.sentov": overlap(ctx.qwords, sp.sentence_text, sp.text),
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
            feats["F.plannear"] = overlap(ctx.plan_words, window, sp.text)
        if search_key(sp.text) in ctx.searched:
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


def _descriptions(pool: Pool, ctx: Context, text: str) -> None:
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


def _first_names(pool: Pool, ctx: Context, text: str) -> None:
    if not re.search(r"\b(?:first|given|middle|birth) name\b", ctx.question, re.I):
        return
    for sp in spans(text):
        if sp.kind == "name" and len(sp.text.split()) >= 2:
            pool.add("Finish", sp.text.split()[0], {"F.src.firstname": 1.0})


def finish_candidates(pool: Pool, ctx: Context) -> None:
    """Propose every Finish candidate of the step (none before the first observation)."""
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
            f"F.qent.r{bucket(i, 3)}": 1.0,
            "F.compat": compatible(ctx.qtype, "qent", 1),
        }
        if search_key(name) in ctx.searched:
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
    _keep_typed_answers(pool, ctx, ordered)


def _keep_typed_answers(pool: Pool, ctx: Context, options: list[str]) -> None:
    """HotpotQA's comparison questions fix their answer's form: a yes/no question is answered yes or
    no, an either/or question by one of the sides it names. Other Finish candidates of such a question
    are dropped (a rule of the task, not fitted to any run)."""
    if ctx.qtype == "yesno":
        allowed = {"yes", "no"}
    elif ctx.qtype == "either":
        allowed = {"yes", "no", *options}
    else:
        return
    for action in [a for a in pool.items if a[0] == "Finish" and a[1] not in allowed]:
        del pool.items[action]
