"""An offline speculator for the ReAct agent's next action and its observation.

Next action, from what the agent has seen so far (the question, earlier
thoughts, actions and observations), ranked:

1. after "Could not find [X]. Similar: [...]": the similar titles, in order;
2. the entities the last thought plans to search ("I need to search X next"),
   and after a found page, Lookup[X] for the thing it plans to "find the X" of;
3. for yes/no and "which of A or B" questions, once both sides were searched:
   Finish[yes] / Finish[no] / Finish[A] / Finish[B]; for "what year" questions,
   Finish[the first year the last observation names];
4. entities of the question not searched yet (quoted titles, capitalised spans);
5. titles of the local index named in the last observation, ranked by BM25
   against the question.

Observation: what the local index (a stand-in for a fast, possibly stale
mirror) answers for the action. Nothing here reads question ids or answers.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ._wiki import LocalWiki, WikiSession

__all__ = ("ActionSpeculator",)

Step = dict[str, Any]  # thought, tool, arg, observation

QUESTION_WORDS = {
    "which", "what", "who", "whom", "whose", "where", "when", "why", "how", "are", "is", "was", "were", "do",
    "does", "did", "in", "the", "a", "an", "of", "on", "for", "from", "both", "and", "or", "at", "to", "by",
    "this", "that", "these", "those", "between", "name", "not",
}  # fmt: skip
SPAN = re.compile(
    r"(?:[A-Z0-9][\w'’.&\-]*|\"[^\"]+\")(?:(?:\s+(?:of|the|and|de|von|van|for|on|in|la|le|&))*\s+[A-Z0-9][\w'’.&\-]*)*"
)
PLAN = re.compile(
    r"(?:search|searching)(?: for)? (.+?)"
    r"(?=,| and find| to find| and see| and check| next|(?<!\b(?-i:[A-Z]))\. |\.$|;| then |$)",
    re.I,
)
NAME = re.compile(r"[A-Z][a-zà-ÿ'’\-]+(?:\s+(?:(?:of|the|and|de|von|van|&)\s+)?[A-Z][\w'’\-]+)+")
MONTHS = {
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December", "The", "It", "As", "In", "He", "She", "They",
}  # fmt: skip
FIND = re.compile(
    r"\bfind (?:the |his |her |its |their )?((?:\d+ )?[a-z]+?(?: [a-z]+)?)"
    r"(?=['’]s\b| he | she | it | that | which | then|,|\.| and| of| in| for|$)"
)
YES_NO = re.compile(r"^(are|is|was|were|do|does|did|can|could|has|have)\b", re.I)
EITHER = re.compile(
    r"^(?:which|who|what|are|is|was|were|did|does|do)\b(?:\s+(?:of|between|one))*\s+(?:the\s+)?(.+?),?\s+or\s+"
    r"(?:the\s+)?(.+?)(?:\s+(?:has|have|is|was|were|are|had|did|does|written|based|born|located|older|first)\b|[?,])",
    re.I,
)
WHICH_AND = re.compile(
    r"^(?:which|who)\s+(?:of|between)\s+(?:the\s+)?(.+?)\s+and\s+(?:the\s+)?(.+?)"
    r"(?:\s+(?:has|have|is|was|were|are|had|did|does)\b|[?,])",
    re.I,
)


def _mentions(text: str, title: str) -> bool:
    """`title` occurs in `text` as whole words, after its start (not the page's own title)."""
    i = text.find(title)
    while i >= 0:
        before, after = text[i - 1 : i] if i else "", text[i + len(title) : i + len(title) + 1]
        if i > 0 and not before.isalnum() and not after.isalnum():
            return True
        i = text.find(title, i + 1)
    return False


def _clean(text: str) -> str:
    return text.strip().strip(".,;:!?").strip()


def _sentence(span: str) -> str:
    """`span` up to the first full stop that ends a sentence (not an initial like "W. H.")."""
    return _clean(re.split(r"(?<=\w\w)\.\s+", span, maxsplit=1)[0])


CONNECTORS = {"of", "the", "and", "de", "von", "van", "du", "la", "le", "in", "&"}
DEMONYMS = {
    "american", "argentine", "british", "english", "french", "german", "dutch", "italian", "spanish",
    "canadian", "australian", "chinese", "japanese", "korean", "indian", "russian", "irish", "scottish",
    "welsh", "mexican", "brazilian", "swedish", "norwegian", "danish", "finnish", "polish", "greek",
}  # fmt: skip


def _capital(token: str) -> bool:
    return bool(token) and (token[0].isupper() or token[0].isdigit())


def question_entities(question: str) -> list[str]:
    """Names a question mentions, most search-worthy first.

    Quoted titles (bare, then in quotes); runs of capitalised words (Unicode
    aware, possessive 's dropped, "of"/"the"/"and" allowed inside), split at
    "and"/"of"/"in" too, with "Place, Region" kept whole; multi-word names
    before single words, nationality adjectives and bare numbers last.
    """
    quoted = re.findall(r"\"([^\"]+)\"", question)
    text = re.sub(r"\"[^\"]+\"", " . ", question)
    tokens = re.findall(r"[^\s,?!;:()]+|,", text)
    spans: list[str] = []
    run: list[str] = []

    def flush() -> None:
        while run and run[-1].lower() in CONNECTORS:
            run.pop()
        if run:
            spans.append(" ".join(run))
        run.clear()

    for tok in tokens:
        word = re.sub(r"['’]s$", "", tok) if tok != "," else tok
        if word.endswith(".") and "." not in word[:-1] and not re.fullmatch(r"[A-Z]\.", word):
            word = word[:-1]  # a full stop, not an initial or an abbreviation like F.C.
        if word == ",":
            flush()
            spans.append(",")
        elif _capital(word) and not (not run and word.lower() in QUESTION_WORDS):
            run.append(word)
            if re.search(r"['’]s\.?$", tok):
                flush()  # a possessive ends the name
        elif run and word.lower() in CONNECTORS:
            run.append(word)
        else:
            flush()
    flush()
    names: list[str] = []
    for i, span in enumerate(spans):
        if span == ",":
            continue
        parts = [p for p in re.split(r"\s+(?:and|of the|of|in|&)\s+", span) if p]
        names.extend(parts)
        if len(parts) > 1:
            names.append(span)
        if i + 2 < len(spans) and spans[i + 1] == "," and spans[i + 2] != ",":
            names.insert(len(names) - len(parts) - (len(parts) > 1) + 1, f"{span}, {spans[i + 2]}")
    multi = [n for n in names if len(n.split()) > 1]
    single = [n for n in names if len(n.split()) == 1 and n.lower() not in DEMONYMS and not n.isdigit()]
    rest = [n for n in names if n not in multi and n not in single]
    out = [v for q in quoted for v in (q, f'"{q}"')] + multi + single + rest
    return [n for n in dict.fromkeys(out) if n and n.lower() not in QUESTION_WORDS]


class ActionSpeculator:
    """Ranked guesses of the next ReAct action, and of the observation it gets."""

    def __init__(self, wiki: LocalWiki | None = None) -> None:
        self.wiki = wiki if wiki is not None else LocalWiki()
        self._rank_cache: tuple[str, dict[str, int]] = ("", {})

    def guess(self, question: str, steps: list[Step], k: int = 3) -> list[tuple[str, str]]:
        """The k most likely next actions `(tool, arg)`, best first."""
        searched = {s["arg"].strip().lower() for s in steps if s.get("tool") == "Search"}
        ranked: list[tuple[str, str]] = []

        def add(tool: str, arg: str, again: bool = False) -> None:
            arg = arg.strip()
            fresh = again or tool != "Search" or arg.lower() not in searched
            if (len(arg) > 1 or tool == "Finish") and fresh and (tool, arg) not in ranked:
                ranked.append((tool, arg))

        last = steps[-1] if steps else None
        if last is not None and str(last.get("observation", "")).startswith("Could not find"):
            similar = str(last["observation"]).split("Similar:", 1)[-1].strip().rstrip(".")
            try:
                titles = [str(t) for t in ast.literal_eval(similar)]
            except (ValueError, SyntaxError):
                titles = []
            for title in [t for t in titles if t.lower() not in searched][:2]:
                add("Search", title)
        if last is not None:
            for m in PLAN.finditer(str(last.get("thought", ""))):
                for part in re.split(r"\s+and\s+", m.group(1)):
                    retry = str(last.get("observation", "")).startswith("Could not find")
                    add("Search", re.sub(r"\s+(?:instead|again)$", "", _clean(part)), again=retry)
        finals = self._finishes(question, steps)
        entities = question_entities(question)
        if finals and (
            len(searched) >= 2 or finals[0][1] not in ("yes", "no") and not EITHER.search(question)
        ):
            for tool, arg in finals:
                add(tool, arg)
        if (
            last is not None
            and last.get("tool") == "Search"
            and not str(last.get("observation", "")).startswith("Could not find")
        ):
            text = str(last.get("observation", "")).lower()
            rank = self._relevance(question)
            named = [t for t in self.wiki.titles if len(t) > 3 and _mentions(text, t.lower())]
            for title in sorted(named, key=lambda t: rank.get(t, len(rank)))[:2]:
                add("Search", title)  # the next hop: a page the last one names, relevant to the question
            page = str(last.get("arg", "")).lower()
            spans = [_sentence(m.group(0)) for m in SPAN.finditer(str(last.get("observation", "")))]
            people = [
                sp
                for sp in spans
                if len(sp.split()) >= 2 and sp.lower() not in page and page not in sp.lower()
            ]
            for span in people[:1]:
                add("Search", span)
        if (
            last is not None
            and last.get("tool") == "Search"
            and not str(last.get("observation", "")).startswith("Could not find")
        ):
            for thought in (str(st.get("thought", "")) for st in steps[-1:]):
                wanted = FIND.search(thought)
                if wanted:
                    add("Lookup", wanted.group(1))
        for entity in entities:
            add("Search", entity)
        for tool, arg in finals:
            add(tool, arg)
        return ranked[:k]

    def _relevance(self, question: str) -> dict[str, int]:
        """Rank of every local title by BM25 against the question (0 = best)."""
        if self._rank_cache[0] != question:
            self._rank_cache = (question, {t: i for i, t in enumerate(self.wiki.similar(question, 50))})
        return self._rank_cache[1]

    @staticmethod
    def _finishes(question: str, steps: list[Step]) -> list[tuple[str, str]]:
        q = question.strip()
        m = EITHER.search(q) or WHICH_AND.search(q)
        if m:
            first = _clean(m.group(1).split(",")[-1])
            return [("Finish", first), ("Finish", _clean(m.group(2)))]
        if YES_NO.match(q):
            return [("Finish", "yes"), ("Finish", "no")]
        last = str(steps[-1].get("observation", "")) if steps else ""
        if re.search(r"\b(what|which) year\b|\bin what year\b", q, re.I):
            return [
                ("Finish", y) for y in list(dict.fromkeys(re.findall(r"\b1\d{3}\b|\b20\d{2}\b", last)))[:1]
            ]
        return []

    def observation(self, tool: str, arg: str, session: WikiSession | None = None) -> str:
        """What the local index answers for `tool[arg]` (Lookup needs the episode's session)."""
        s = session if session is not None else WikiSession(self.wiki)
        return s.observe(tool, arg)
