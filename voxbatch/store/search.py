"""Full-text search (SQLite FTS5) over transcripts and summaries."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session


@dataclass(frozen=True)
class SearchHit:
    job_id: int
    transcript_id: int
    source_name: str
    snippet: str
    rank: float


def search_transcripts(session: Session, match: str, *, limit: int = 20) -> list[SearchHit]:
    """FTS5 over transcripts; `match` must already be a safe MATCH expression."""
    rows = fts_search(session, "transcript", match, limit=limit)
    return [
        SearchHit(job_id, row_id, name, snip, rank) for row_id, job_id, name, snip, rank in rows
    ]


def fts_search(
    session: Session, table: str, match: str, *, limit: int
) -> list[tuple[int, int, str, str, float]]:
    """(row id, job id, file name, snippet, rank) of the rows of `table` (transcript or
    summary) whose text matches, best first, through its FTS5 index `<table>_fts`."""
    if table not in ("transcript", "summary"):
        raise ValueError(f"no full-text index for {table!r}")
    rows = session.connection().execute(
        sa.text(
            f"SELECT t.id, t.job_id, j.source_name, "
            f"snippet({table}_fts, 0, '[', ']', '…', 12) AS snip, bm25({table}_fts) AS rank "
            f"FROM {table}_fts JOIN {table} t ON t.id = {table}_fts.rowid "
            "JOIN job j ON j.id = t.job_id "
            f"WHERE {table}_fts MATCH :q ORDER BY rank LIMIT :limit"
        ),
        {"q": match, "limit": limit},
    )
    return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def fts_query(text: str, *, prefix_last: bool = True) -> str:
    """Turn arbitrary user input into a safe FTS5 MATCH expression.

    Each whitespace-separated word becomes a quoted FTS5 string, so quotes, parentheses,
    `-`, `*`, `:` and words like AND/OR/NOT/NEAR are searched as text, never parsed as
    query syntax. All words must appear (implicit AND), in any order; a word holding
    punctuation (`foo-bar`) matches as a phrase. With `prefix_last`, the last word also
    matches longer words (`transcr` finds `transcription`). Input without words gives `""`,
    which matches nothing (an empty MATCH string would be a syntax error).
    """
    # NUL ends an FTS5 string early; unencodable surrogates (from argv) cannot reach SQLite.
    cleaned = text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    words = cleaned.split()
    if not words:
        return '""'
    quoted = ['"' + word.replace('"', '""') + '"' for word in words]
    if prefix_last:
        quoted[-1] += "*"
    return " ".join(quoted)


@dataclass(frozen=True)
class SummaryHit:
    job_id: int
    summary_id: int
    source_name: str
    snippet: str
    rank: float


def search_summaries(session: Session, match: str, *, limit: int = 20) -> list[SummaryHit]:
    """FTS5 over summaries; `match` must already be a safe MATCH expression."""
    rows = fts_search(session, "summary", match, limit=limit)
    return [
        SummaryHit(job_id, row_id, name, snip, rank) for row_id, job_id, name, snip, rank in rows
    ]
