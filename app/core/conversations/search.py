"""Full-text search over the conversation store: rank first, make snippets later.

The store keeps two external-content FTS5 tables (see the migrations in app.core.conversations.store):
messages_fts over messages.text and titles_fts over conversations.title, both tokenized with
unicode61 (remove_diacritics 2) and, from schema 4 on, with prefix indexes for 2 and 3 characters.

A search ranks the matches by bm25 without making any snippet, keeps the best `limit`, and only
then reads those few messages back to cut a snippet around the first match, in Python. SQLite's
snippet() would be computed for every matching row before the sort, which for a common word is
most of the cost.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import unicodedata
from collections import deque
from dataclasses import dataclass

MATCH_START, MATCH_END = "\x02", "\x03"  # around matches in search snippets: never in real text
ELLIPSIS = "…"
RANK_AMONG_NEWEST = 5000  # a term matching more messages is ranked among its newest matches only
SNIPPET_WORDS = 12  # words in a snippet, about as snippet(..., 12) made them
WORDS_BEFORE_MATCH = 4  # of those, how many come before the first match (when there are so many)

# A token as unicode61 sees one: a run of letters and digits (its default categories L* N* Co).
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    message_id: str | None  # None when the title matched
    title: str
    snippet: str  # text around the match; matches between MATCH_START and MATCH_END
    rank: float  # lower is better (bm25)


def search(db: sqlite3.Connection, query: str, limit: int = 50) -> list[SearchHit]:
    """Messages and titles matching every word of `query` (each as a prefix), best first (bm25).

    A title hit is given only for a conversation none of whose messages is among the hits;
    deleted conversations are left out. For a term so common that it matches more than
    RANK_AMONG_NEWEST messages (or titles), only the newest RANK_AMONG_NEWEST matches (by rowid)
    are ranked: ranking all of them costs time in proportion to their number (messages of deleted
    conversations not yet purged count among them). Rarer terms are ranked among all their matches.
    """
    match = _fts_query(query)
    if not match or limit <= 0:
        return []
    params = {"q": match, "limit": limit, "newest": RANK_AMONG_NEWEST}
    messages = db.execute("""
        SELECT m.num AS num, m.id AS mid, c.id AS cid, c.title AS title, r.rank AS rank
        FROM (SELECT rowid, bm25(messages_fts) AS rank FROM messages_fts
              WHERE messages_fts MATCH :q ORDER BY rowid DESC LIMIT :newest) AS r
        JOIN messages m ON m.num = r.rowid
        JOIN conversations c ON c.id = m.conversation_id
        WHERE c.deleted IS NULL
        ORDER BY r.rank, r.rowid DESC LIMIT :limit""", params).fetchall()
    titles = db.execute("""
        SELECT NULL AS num, NULL AS mid, c.id AS cid, c.title AS title, r.rank AS rank
        FROM (SELECT rowid, bm25(titles_fts) AS rank FROM titles_fts
              WHERE titles_fts MATCH :q ORDER BY rowid DESC LIMIT :newest) AS r
        JOIN conversations c ON c.num = r.rowid
        WHERE c.deleted IS NULL
        ORDER BY r.rank, r.rowid DESC LIMIT :limit""", params).fetchall()
    best = sorted([*messages, *titles], key=lambda r: r["rank"])[:limit]  # stable: messages first on ties
    # A title hit adds nothing where the same conversation's messages matched too.
    with_messages = {r["cid"] for r in best if r["mid"] is not None}
    best = [r for r in best if r["mid"] is not None or r["cid"] not in with_messages]

    nums = [r["num"] for r in best if r["num"] is not None]
    texts = dict(db.execute(f"SELECT num, text FROM messages WHERE num IN ({','.join('?' * len(nums))})",
                            nums).fetchall()) if nums else {}
    terms = _query_terms(query)
    return [SearchHit(r["cid"], r["mid"], r["title"],
                      make_snippet(texts.get(r["num"], ""), terms) if r["mid"] is not None
                      else mark_all(r["title"], terms), r["rank"])
            for r in best]


# -- snippets ----------------------------------------------------------------------------------------

Terms = tuple[frozenset[str], tuple[str, ...]]  # (whole words, prefixes), folded


def fold(text: str) -> str:
    """Lower case without diacritics, as unicode61 with remove_diacritics compares words."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _query_terms(query: str) -> Terms:
    """The words a match can be: each query word is a phrase whose last word is a prefix.

    "don't" is the phrase "don" "t"*: "don" must be a whole word, "t" a word's beginning.
    """
    whole, prefixes = set(), []
    for word in query.split():
        tokens = _TOKEN.findall(fold(word))
        if tokens:
            whole.update(tokens[:-1])
            prefixes.append(tokens[-1])
    return frozenset(whole), tuple(prefixes)


def _matches(token: str, terms: Terms) -> bool:
    folded = fold(token)
    return folded in terms[0] or folded.startswith(terms[1])


def _marked(text: str, tokens: list[re.Match], terms: Terms, start: int, end: int) -> str:
    """text[start:end] with every matching token in it between MATCH_START and MATCH_END."""
    out, at = [], start
    for token in tokens:
        if _matches(token.group(), terms):
            out += [text[at:token.start()], MATCH_START, token.group(), MATCH_END]
            at = token.end()
    out.append(text[at:end])
    return "".join(out)


def mark_all(text: str, terms: Terms) -> str:
    """The whole text with its matches marked (for titles)."""
    return _marked(text, list(_TOKEN.finditer(text)), terms, 0, len(text))


def make_snippet(text: str, terms: Terms, words: int = SNIPPET_WORDS) -> str:
    """About `words` words around the first match, matches marked, "…" where the text was cut.

    A match is a word that folds (case, diacritics) to one of the query's words, or, for the
    last word of each query word, begins with it. Without one, the text's beginning.
    """
    before: deque[re.Match] = deque(maxlen=words)  # the words before the first match
    window: list[re.Match] = []
    more = False  # whether any word follows the window
    tokens = _TOKEN.finditer(text)
    for token in tokens:
        if window or _matches(token.group(), terms):
            if len(window) + min(len(before), WORDS_BEFORE_MATCH) >= words:
                more = True
                break
            window.append(token)
        else:
            before.append(token)
    if not window:  # no match found (it cannot be, but never fail on it): the text's beginning
        head = list(itertools.islice(_TOKEN.finditer(text), words + 1))
        window, more = head[:words], len(head) > words
    else:
        # Fill what the text's end left short with words from before the match.
        keep = min(len(before), max(WORDS_BEFORE_MATCH, words - len(window)))
        window = list(before)[len(before) - keep:] + window
    if not window:
        return text.strip()
    first_token = window[0]
    cut_before = first_token.start() > 0 and bool(_TOKEN.search(text, 0, first_token.start()))
    start = first_token.start() if cut_before else 0
    end = window[-1].end() if more else len(text)
    snippet = _marked(text, window, terms, start, end)
    return (ELLIPSIS if cut_before else "") + snippet.strip() + (ELLIPSIS if more else "")


def _fts_query(text: str) -> str:
    """Each word as a quoted prefix term: user input can never be FTS5 syntax."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words if w.strip('"'))
