"""Wikipedia backends with ReAct's semantics: Search[entity], Lookup[keyword], Finish[answer].

- `LocalWiki`: offline, over the 1000 real Wikipedia paragraphs of the
  HotpotQA sample (CC BY-SA 4.0, see data/LICENSE.md); "Similar" titles are
  ranked with BM25 (bm25s).
- `WikipediaAPI`: the live MediaWiki API (or any server that speaks it, e.g. a
  stub on 127.0.0.1 in tests).
- `RecordedWiki`: Wikipedia as recorded runs saw it; an action a run took
  after the same earlier actions gets the observation that run got.

Search on an exact title returns the page's first paragraph; otherwise
"Could not find [X]. Similar: [...]". Lookup returns the next sentence of the
current page that contains the keyword, with its index, then "No more results.".
Only Search is a round trip (it pays the session's latency); Lookup reads the
page Search fetched.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .._common import data_text as _data_text

__all__ = ("LocalWiki", "RecordedWiki", "WikiSession", "WikipediaAPI", "load_questions", "parse_action")

ACTION = re.compile(r"^\s*(Search|Lookup|Finish)\[(.*)\]\s*$", re.S)


def parse_action(text: str) -> tuple[str, str] | None:
    """(tool, argument) of `Search[x]`, `Lookup[x]`, `Finish[x]`; None if it is none of these."""
    m = ACTION.match(text.strip().splitlines()[-1] if text.strip() else "")
    return (m.group(1), m.group(2)) if m else None


def data_text(name: str) -> str:
    """A file from the packaged HotpotQA data (found from any directory)."""
    return _data_text(__name__.rpartition(".")[0], name)


@cache
def load_questions() -> list[dict[str, Any]]:
    """The 100 HotpotQA questions with their paragraphs."""
    return list(json.loads(data_text("hotpot_distractor_100.json")))


def _norm(title: str) -> str:
    return re.sub(r"\s+", " ", title.replace("_", " ")).strip().strip("\"'").lower()


class LocalWiki:
    """An offline wiki of real paragraphs; `similar` ranks titles with BM25."""

    def __init__(self, pages: dict[str, list[str]] | None = None) -> None:
        if pages is None:
            pages = {}
            for q in load_questions():
                for title, sentences in q["context"]:
                    pages.setdefault(title, sentences)
        self.pages = pages
        self.titles = list(pages)
        self._by_norm = {_norm(t): t for t in self.titles}
        import bm25s

        self._retriever = bm25s.BM25()
        corpus = [f"{t} {t} {''.join(s)}" for t, s in pages.items()]
        self._retriever.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )

    def page(self, entity: str) -> str | None:
        """The exact title for `entity`, if the wiki has it."""
        return self._by_norm.get(_norm(entity))

    def paragraph(self, title: str) -> str:
        return "".join(self.pages[title]).strip()

    def sentences(self, title: str) -> list[str]:
        return [s.strip() for s in self.pages[title] if s.strip()]

    def similar(self, text: str, n: int = 5) -> list[str]:
        """Titles ranked by BM25 against `text`."""
        import bm25s

        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        docs, _ = self._retriever.retrieve(tokens, k=min(n, len(self.titles)), show_progress=False)
        return [self.titles[int(i)] for i in docs[0]]


@dataclass
class WikipediaAPI:
    """The live MediaWiki API at `base_url` (Wikipedia's by default)."""

    base_url: str = "https://en.wikipedia.org/w/api.php"
    timeout: float = 20.0
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, **params: str) -> Any:
        url = self.base_url + "?" + urllib.parse.urlencode({"format": "json", **params})
        req = urllib.request.Request(url, headers={"User-Agent": "langgraph-speculative (ReAct HotpotQA)"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode())

    def page(self, entity: str) -> str | None:
        data = self._get(
            action="query",
            prop="extracts",
            exintro="1",
            explaintext="1",
            redirects="1",
            titles=entity.strip(),
        )
        for page in data.get("query", {}).get("pages", {}).values():
            if "missing" not in page and page.get("extract"):
                self._cache[page["title"]] = page["extract"]
                return str(page["title"])
        return None

    def paragraph(self, title: str) -> str:
        return str(self._cache[title]).split("\n")[0].strip()

    def sentences(self, title: str) -> list[str]:
        text = " ".join(str(self._cache[title]).split("\n"))
        return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]

    def similar(self, text: str, n: int = 5) -> list[str]:
        data = self._get(action="query", list="search", srsearch=text, srlimit=str(n))
        return [hit["title"] for hit in data.get("query", {}).get("search", [])]


Action = tuple[str, str]


class RecordedWiki:
    """Wikipedia as recorded ReAct runs saw it, for replaying them offline.

    An action that a run in `runs` took after the same earlier actions gets the
    observation that run recorded (real Wikipedia text of its day); any other
    action is answered by `fallback` (the local wiki by default).
    """

    def __init__(self, runs: list[dict[str, Any]], fallback: Any = None) -> None:
        self.fallback = fallback if fallback is not None else LocalWiki()
        self.answers: dict[tuple[tuple[Action, ...], str, str], str] = {}
        for run in runs:
            history: tuple[Action, ...] = ()
            for s in run["steps"]:
                self.answers.setdefault((history, s["tool"], s["arg"]), s["observation"])
                history += ((s["tool"], s["arg"]),)

    def recorded(self, history: tuple[Action, ...], tool: str, arg: str) -> str | None:
        """The observation a recorded run got for `tool[arg]` after `history`, if any."""
        return self.answers.get((history, tool, arg))

    def page(self, entity: str) -> str | None:
        return self.fallback.page(entity)  # type: ignore[no-any-return]

    def paragraph(self, title: str) -> str:
        return str(self.fallback.paragraph(title))

    def sentences(self, title: str) -> list[str]:
        return list(self.fallback.sentences(title))

    def similar(self, text: str, n: int = 5) -> list[str]:
        return list(self.fallback.similar(text, n))


@dataclass
class WikiSession:
    """One ReAct episode on a backend: the current page, the Lookup cursor, the actions so far."""

    backend: Any
    latency: float = 0.0
    page: str | None = None
    _lookup: tuple[str, list[str], int] | None = None
    history: tuple[Action, ...] = ()

    def step(self, tool: str, arg: str) -> str:
        """The observation for `tool[arg]` (a Search waits `latency` seconds first)."""
        if self.latency and tool == "Search":
            time.sleep(self.latency)
        return self.observe(tool, arg)

    def observe(self, tool: str, arg: str) -> str:
        """The observation for `tool[arg]` now, without latency."""
        answer = self._observe(tool, arg)
        recorded = getattr(self.backend, "recorded", None)
        replayed = recorded(self.history, tool, arg) if recorded is not None else None
        self.history += ((tool, arg),)
        return answer if replayed is None else str(replayed)

    def _observe(self, tool: str, arg: str) -> str:
        if tool == "Search":
            title = self.backend.page(arg)
            self._lookup = None
            if title is None:
                self.page = None
                return f"Could not find [{arg}]. Similar: {self.backend.similar(arg)}"
            self.page = title
            return str(self.backend.paragraph(title))
        if tool == "Lookup":
            if self.page is None:
                return "No page is open: Search[entity] first."
            if self._lookup is None or self._lookup[0] != arg:
                hits = [s for s in self.backend.sentences(self.page) if arg.lower() in s.lower()]
                self._lookup = (arg, hits, 0)
            keyword, hits, i = self._lookup
            if i >= len(hits):
                return "No more results."
            self._lookup = (keyword, hits, i + 1)
            return f"(Result {i + 1} / {len(hits)}) {hits[i]}"
        if tool == "Finish":
            return "Episode finished."
        return f"Invalid action: {tool}[{arg}]. Use Search[entity], Lookup[keyword] or Finish[answer]."
