"""FTS5 tokenizers for search, compared on the normalised text (docs/serve.md, Search).

    python bench/search_tokenizers.py [--copies 20]

Documents: every paragraph of tests/fixtures and seeds/ (Chinese in both scripts, English),
each also in the other Chinese script, repeated `--copies` times for size and speed.
Indexed three ways, all over `dedup.text.normalise`'s form: `unicode61` as it is,
`trigram`, and `unicode61` with a space around each Han character (what storage does).
For each query (Chinese words of 2-4 characters in either script, English words), the
documents found are compared with those holding the normalised word; printed: recall,
the index's size and build time, and the median time of a query.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import time
from pathlib import Path

from aggregator.dedup.text import normalise
from aggregator.storage.fulltext import parse_query

ROOT = Path(__file__).resolve().parent.parent
QUERIES = [
    "峰会",
    "峰會",
    "巴黎",
    "人工智能",
    "人工智慧",
    "模型",
    "欧洲",
    "歐洲",
    "深度求索",
    "芯片",
    "deepseek",
    "summit",
    "paris",
    "europe",
    "nvidia",
    "declaration",
]


def spaced(normalised: str) -> str:
    """`fulltext.index_text` of text normalised already (the build time is the index's)."""
    return re.sub(r"[\u3400-\u9fff\uf900-\ufaff]", r" \g<0> ", normalised)


def documents(copies: int) -> list[str]:
    import opencc

    to_tw = opencc.OpenCC("s2twp")
    paragraphs = []
    for path in sorted([*ROOT.glob("tests/fixtures/*/*"), *ROOT.glob("seeds/*")]):
        if path.is_file() and path.suffix in (".md", ".txt", ".xml"):
            text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
            paragraphs += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 20]
    both = paragraphs + [to_tw.convert(p) for p in paragraphs]
    return both * copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()
    docs = documents(args.copies)
    normalised = [normalise(d) for d in docs]
    print(f"{len(docs):,} documents, {sum(map(len, docs)):,} characters")
    ways = {
        "unicode61": ("unicode61", lambda t: t, lambda q: '"' + normalise(q) + '"'),
        "trigram": ("trigram", lambda t: t, lambda q: '"' + normalise(q) + '"'),
        "unicode61, Han spaced": ("unicode61", spaced, lambda q: parse_query(q).match),
    }
    for name, (tokenizer, shape, ask) in ways.items():
        db = sqlite3.connect(":memory:")
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize = '{tokenizer}')")
        started = time.perf_counter()
        db.executemany(
            "INSERT INTO t (rowid, body) VALUES (?, ?)",
            [(i, shape(n)) for i, n in enumerate(normalised)],
        )
        db.commit()
        built = time.perf_counter() - started
        pages = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 't_%'").fetchone()[0]
        missed, extra, times = [], 0, []
        for query in QUERIES:
            word = normalise(query)
            if word.isascii():
                want = {
                    i
                    for i, n in enumerate(normalised)
                    if re.search(rf"(?<![a-z0-9]){word}(?![a-z0-9])", n)
                }
            else:
                want = {i for i, n in enumerate(normalised) if word in n}
            started = time.perf_counter()
            got = {r[0] for r in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (ask(query),))}
            times.append(time.perf_counter() - started)
            if want - got:
                missed.append(f"{query} {len(want - got)}/{len(want)}")
            extra += len(got - want)
        found = sum(1 for q in QUERIES) - len(missed)
        print(
            f"{name:24} queries fully found {found}/{len(QUERIES)}; extra {extra}; "
            f"index {pages / 2**20:.1f} MiB, built in {built:.2f} s; "
            f"query median {statistics.median(times) * 1000:.2f} ms; "
            f"missed: {', '.join(missed) or '-'}"
        )


if __name__ == "__main__":
    main()
