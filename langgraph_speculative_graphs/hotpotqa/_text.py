"""Reading ReAct text: names in a question or a paragraph, the question's type, plans in thoughts.

Everything here is generic English and ReAct structure (capitalised runs,
dates, "Similar:" lists, "search X and Y" plans); nothing is keyed to a
question, a title or an answer.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = (
    "Span",
    "content_words",
    "head_noun",
    "plans",
    "question_type",
    "quoted",
    "similar_titles",
    "spans",
    "stem",
)

STOP = {
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "are",
    "was", "were", "be", "been", "do", "does", "did", "has", "have", "had", "which", "what", "who", "whom",
    "whose", "where", "when", "why", "how", "this", "that", "these", "those", "it", "its", "as", "both",
    "than", "into", "also", "not", "one", "name", "there", "their", "his", "her", "he", "she", "they",
    "i", "me", "my", "we", "you", "so", "then", "can", "could", "would", "will", "more", "most",
    "first", "other", "same", "between", "about", "after", "before", "during", "known", "whats",
}  # fmt: skip
# Capitalised words that start a sentence or a clause without starting a name.
OPENERS = {
    "The", "A", "An", "In", "On", "At", "He", "She", "It", "Its", "His", "Her", "They", "Their", "This",
    "That", "These", "Those", "After", "Before", "During", "As", "From", "For", "With", "By", "When",
    "While", "Since", "Although", "However", "Following", "According", "Also", "Both", "Which", "What",
    "Who", "Whom", "Whose", "Where", "How", "Why", "Is", "Are", "Was", "Were", "Did", "Does", "Do", "I",
    "So", "But", "And", "Or", "If", "Then", "There", "Here", "Many", "Some", "Born", "To", "Today",
    "Thought", "Action", "Observation", "Search", "Lookup", "Finish", "Similar", "Could", "Maybe", "Now",
    "Yes", "No", "Not", "Name", "Whats", "Can", "Has", "Have", "Had", "Each", "Every", "Other",
}  # fmt: skip
TITLES = {
    "prime", "minister", "president", "chancellor", "king", "queen", "prince", "princess", "senator",
    "governor", "general", "captain", "capt", "sir", "dame", "lord", "lady", "dr", "saint", "st", "pope",
    "emperor", "empress", "duke", "duchess", "count", "judge", "mayor", "chief", "director", "coach",
    "italian", "austrian", "hungarian", "american", "british", "english", "french", "german", "dutch",
    "spanish", "canadian", "australian", "chinese", "japanese", "korean", "indian", "russian", "irish",
    "scottish", "welsh", "mexican", "brazilian", "swedish", "norwegian", "danish", "finnish", "polish",
    "greek", "argentine", "portuguese", "belgian", "swiss", "israeli", "egyptian", "turkish", "nepali",
}  # fmt: skip
"""Honorifics, offices and nationalities: words a name's tail drops ("Italian Prime Minister X" -> X)."""
CONNECTORS = {
    "of", "the", "and", "de", "von", "van", "du", "la", "le", "del", "da", "di", "&", "for", "on", "in",
}  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
_MONTH = "|".join(MONTHS)
DATE = re.compile(
    rf"\b(?:\d{{1,2}} (?:{_MONTH}),? \d{{3,4}}|(?:{_MONTH}) \d{{1,2}}, \d{{3,4}}|(?:{_MONTH}) \d{{4}})\b"
)
YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
NUMBER = re.compile(
    r"\b(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|hundred)\b",
    re.I,
)
TOKEN = re.compile(r"\w(?:[\w'’\-–&]|\.(?=\w))*\.?|[,;:()\[\]!?&]")
SENTENCE_END = re.compile(r"(?<=[\w)\]\"'’][\w)\]\"'’])[.!?](?:\s+|(?=[A-Z][a-z]))|\n+")


@dataclass(frozen=True)
class Span:
    """A candidate name in a text: its words, where it starts, and how it was cut."""

    text: str
    start: int
    sentence: int
    kind: str  # "name", "name-part", "name-bare" (opener dropped), "pair" (X, Y), "date", "year", "number"
    before: str  # the lower-cased word before it ("" at a sentence start)
    after: str  # the lower-cased word after it
    sentence_text: str = ""  # the sentence it is in


def stem(word: str) -> str:
    """A crude stem: lower case, plural and common suffixes dropped."""
    w = word.lower().strip("'’\".,")
    for suffix in ("ies", "ing", "ed", "es", "s", "'s", "’s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def content_words(text: str) -> set[str]:
    """Stems of the words of `text` that are not stop words."""
    return {stem(w) for w in re.findall(r"\w[\w'’\-]*", text) if w.lower() not in STOP and len(w) > 1}


def quoted(text: str) -> list[str]:
    """Strings in straight or curly double quotes."""
    return [m.group(1) or m.group(2) for m in re.finditer(r"\"([^\"]+)\"|“([^”]+)”", text)]


def _tokens(sentence: str) -> list[tuple[str, int]]:
    out = []
    for m in TOKEN.finditer(sentence):
        tok, pos = m.group(0), m.start()
        if tok.endswith(".") and not re.fullmatch(r"(?:\w\.)+|[A-Z][a-z]{0,2}\.", tok):
            tok = tok[:-1]  # a full stop, not an initial or an abbreviation
        out.append((tok, pos))
    return out


def _capital(tok: str) -> bool:
    return tok[:1].isupper() or (tok[:1].isdigit() and bool(re.search(r"[A-Za-z]", tok)))


def _runs(toks: list[tuple[str, int]], possessive_ends: bool) -> list[tuple[int, int]]:
    """Token ranges of capitalised runs (connectors allowed inside)."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if not _capital(toks[i][0]):
            i += 1
            continue
        j = i + 1
        while j < len(toks):
            t = toks[j][0]
            if possessive_ends and re.search(r"['’]s$", toks[j - 1][0]):
                break
            if _capital(t) or t.isdigit():
                j += 1
            elif t.lower() in CONNECTORS and j + 1 < len(toks) and _capital(toks[j + 1][0]):
                j += 1
            else:
                break
        runs.append((i, j))
        i = j
    return runs


def _names(sentence: str, base: int, s_index: int) -> list[Span]:
    """The name spans of one sentence (see `spans`)."""
    out: list[Span] = []
    toks = _tokens(sentence)
    runs = _runs(toks, possessive_ends=True)

    def add(ws: list[str], kind: str, i: int, j: int) -> None:
        while ws and ws[-1].lower() in CONNECTORS:
            ws = ws[:-1]
        if ws and ws[0] in MONTHS and (len(ws) == 1 or ws[1][:1].isdigit()):
            return  # a date ("May 2", "February 1945"), not a name
        if ws and not (len(ws) == 1 and ws[0] in OPENERS):
            before = toks[i - 1][0].lower() if i else ""
            after = toks[j][0].lower() if j < len(toks) else ""
            out.append(Span(" ".join(ws), base + toks[i][1], s_index, kind, before, after, sentence))

    def tails(words: list[str], j: int) -> None:
        for n_tail in range(2, len(words)):
            if words[-n_tail] not in OPENERS:
                dropped = words[: len(words) - n_tail]
                titled = all(w.lower().strip(".") in TITLES for w in dropped)
                add(words[-n_tail:], "name-untitled" if titled else "name-tail", j - n_tail, j)

    def cut(words: list[str], i: int, j: int, kind: str) -> None:
        add(words, kind, i, j)
        pieces: list[list[str]] = [[]]
        for w in words:
            if w.lower() in CONNECTORS - {"de", "von", "van", "du", "la", "le", "del", "da", "di"}:
                pieces.append([])
            else:
                pieces[-1].append(w)
        if len(pieces) == 1:
            tails(words, j)
            return
        k = i
        for piece in pieces:
            if piece:
                add(piece, "name-part", k, k + len(piece))
                tails(piece, k + len(piece))
            k += len(piece) + 1

    for n, (i, j) in enumerate(runs):
        words = [re.sub(r"['’]s$", "", t) for t, _ in toks[i:j]]
        if words[0] in OPENERS and len(words) > 1:
            add(words, "name-opener", i, j)
            words, i = words[1:], i + 1
        cut(words, i, j, "name")
        nxt = runs[n + 1] if n + 1 < len(runs) else None
        if nxt and nxt[0] == j + 1 and toks[j][0] == "," and nxt[1] - nxt[0] <= 3 and len(words) <= 3:
            second = [t for t, _ in toks[nxt[0] : nxt[1]]]
            add([" ".join(words) + ",", *second], "pair", i, nxt[1])
    for i, j in _runs(toks, possessive_ends=False):
        if any(re.search(r"['’]s$", t) for t, _ in toks[i : j - 1]):
            words = [t for t, _ in toks[i:j]]
            if words[0] in OPENERS:
                words, i = words[1:], i + 1
            for piece in re.split(r"\s+(?:and|&)\s+", " ".join(words)):
                if re.search(r"['’]s\b", piece):
                    add(piece.split(), "name-poss", i, j)
    return out


def spans(text: str) -> list[Span]:
    """Names, dates, years and numbers in `text`, in reading order, with the ways to cut each name.

    A name is a run of capitalised words (connectors like "of", "the", "and"
    allowed inside, a possessive 's ends it). Each run gives: the run
    ("name"; "name-opener" when it starts with a word like "The" or "In", and
    then the run without it as "name"), its tails of two or more words
    ("Prime Minister Benito Mussolini" -> "Benito Mussolini"), its parts split
    at connectors, the run through a possessive ("Woman's Era"), and "X, Y"
    when a short name follows a comma ("Hilo, Hawaii").
    """
    out: list[Span] = []
    offset = 0
    for s_index, sentence in enumerate(SENTENCE_END.split(text)):
        base = text.find(sentence, offset) if sentence else offset
        offset = base + len(sentence)
        out.extend(_names(sentence, base, s_index))
        taken: list[tuple[int, int]] = []
        for pattern, kind in ((DATE, "date"), (YEAR, "year"), (NUMBER, "number")):
            for m in pattern.finditer(sentence):
                if kind == "number" and any(a <= m.start() < b for a, b in taken):
                    continue
                taken.append((m.start(), m.end()))
                pre = sentence[: m.start()].split()
                post = sentence[m.end() :].split()
                out.append(
                    Span(
                        m.group(0),
                        base + m.start(),
                        s_index,
                        kind,
                        pre[-1].lower().strip("(,") if pre else "",
                        post[0].lower().strip("),.") if post else "",
                        sentence,
                    )
                )
    return out


YES_NO = re.compile(r"^\s*(?:are|is|was|were|do|does|did|can|could|has|have|had|will|would)\b", re.I)
PLACES = {
    "city", "state", "country", "county", "town", "village", "province", "region", "island", "place",
    "continent", "district", "neighborhood", "neighbourhood", "borough", "suburb", "nation",
}  # fmt: skip
PEOPLE = {"person", "man", "woman", "actor", "actress", "singer", "player", "director", "author", "writer"}
_PHRASE_END = {
    "is", "was", "are", "were", "do", "does", "did", "has", "have", "had", "in", "of", "that", "which",
    "who", "for", "from", "by", "to", "on", "at", "with", "than", "can", "could", "will", "would", "and",
    "the", "a", "an", "this", "these", "those", "his", "her", "its", "their", "he", "she", "it", "they",
}  # fmt: skip


def _phrase_head(toks: list[str], i: int) -> str:
    phrase: list[str] = []
    j = i + 1
    while j < len(toks) and len(phrase) < 5:
        t = toks[j]
        low = t.lower()
        if low in ("kind", "type", "sort") and j + 1 < len(toks) and toks[j + 1].lower() == "of":
            j += 2
            continue
        if t == "," and j + 1 < len(toks) and toks[j + 1][:1].isupper():
            j += 1
            continue
        if low in _PHRASE_END or not re.match(r"\w", t) or phrase and low.endswith("ed"):
            break
        if not t[:1].isupper() and not t[:1].isdigit():
            phrase.append(re.sub(r"['’]s$", "", low))
        j += 1
    return stem(phrase[-1]) if phrase else ""


def head_noun(question: str) -> str:
    """The stem of the noun the question asks for ("which modern art museum in X" -> "museum"), or "".

    The question's own "what"/"which" when it opens with one ("In what year ..."),
    otherwise its last "what"/"which" that names a noun; "" when it opens with
    who, when, where or how.
    """
    toks = re.findall(r"[\w'’\-]+|[,?;:]", question)
    lows = [t.lower() for t in toks]
    opener = next((i for i, t in enumerate(lows[:3]) if t in WH_WORDS), None)
    if opener is not None and lows[opener] not in ("what", "which"):
        return ""
    if opener is not None:
        return _phrase_head(toks, opener)
    for i in reversed([i for i, t in enumerate(lows) if t in ("what", "which")]):
        head = _phrase_head(toks, i)
        if head:
            return head
    return ""


WH_WORDS = {"what", "which", "who", "whom", "whose", "where", "when", "how", "why", "whats"}


def question_type(question: str) -> str:
    """A coarse answer type: yesno, either, year, date, number, person, place, or thing."""
    q = question.strip()
    low = q.lower()
    first = low.split()[0] if low.split() else ""
    choice = re.search(r"\bor\s+[\"“A-Z]", q) is not None
    if choice and (first in WH_WORDS or YES_NO.match(q) or re.search(r",[^,]+\bor\b[^,]+\?\s*$", q)):
        return "either"
    if re.match(r"^\s*(?:[Ww]hich|[Ww]ho)\s+(?:one\s+)?(?:of|between)\s+(?:the\s+)?[A-Z\"“].*\band\b", q):
        return "either"
    if YES_NO.match(q):
        return "yesno"
    if re.search(r"\b(?:what|which) year\b|\bwhat decade\b", low):
        return "year"
    if first == "when" or re.search(r"\bwhat date\b|\bbirthday\b|\bdate of\b", low):
        return "date"
    if re.search(r"\bhow (?:many|much|long|old|tall|big)\b|\bwhat (?:is the )?(?:number|population)\b", low):
        return "number"
    head = head_noun(q)
    if head in PLACES:
        return "place"
    if head in PEOPLE:
        return "person"
    if head:
        return "thing"
    if re.search(r"\bwhere\b", low):
        return "place"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b", low):
        return "person"
    if re.search(r"\bwhen\b", low):
        return "date"
    return "thing"


PLAN = re.compile(
    r"\b(?:search(?:ing)?|look(?:ing)? up|lookup)(?: for)? (.+?)"
    r"(?=,| and find| to find| and see| and check|(?-i: next| instead| again| first)"
    r"|(?<![A-Z])\.(?:\s|$)|;| then |$)",
    re.I,
)


def plans(thought: str) -> list[tuple[str, str, bool]]:
    """What a thought plans to search or look up: (tool, target, whole) in order.

    `whole` is False for a piece of a plan split at "and"/"or" ("search A and
    B" gives the whole "A and B", then A and B).
    """
    out: list[tuple[str, str, bool]] = []
    for m in PLAN.finditer(thought):
        verb = "Lookup" if m.group(0).lower().startswith("look") else "Search"
        parts = re.split(r"\s+and\s+|\s+or\s+", m.group(1))
        for part in ([m.group(1)] if len(parts) > 1 else []) + parts:
            whole = part is m.group(1) or len(parts) == 1
            part = part.strip().strip(".,;:!?").strip()
            part = re.sub(r"^(?:the|a|an)\s+(?=[a-z])", "", part)
            if part and len(part) > 1:
                out.append((verb, part, whole))
                inner = quoted(part)
                if len(inner) == 1 and re.fullmatch(r"[\"“][^\"”]+[\"”]", part):
                    out.append((verb, inner[0], whole))
                elif inner:
                    for q in inner:
                        out.extend([(verb, f'"{q}"', False), (verb, q, False)])
    return out


def similar_titles(observation: str) -> tuple[str, list[str]] | None:
    """(the query, the titles) of a "Could not find [X]. Similar: [...]" observation, else None."""
    m = re.match(r"Could not find \[(.*)\]\. Similar: (\[.*\])\s*\.?$", observation.strip(), re.S)
    if not m:
        return None
    try:
        titles = ast.literal_eval(m.group(2))
    except (ValueError, SyntaxError):
        return m.group(1), []
    return m.group(1), [str(t) for t in titles]
