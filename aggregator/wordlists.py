"""Word lists of many languages: wordfreq's word frequencies, and the function words of the
Latin-script languages besides English, by which a text is told to be in one of them.

Story terms (`dedup.terms`) weigh words by these frequencies and drop another language's
function words from a text that reads as that language; the parsers (`sources.language`)
label an undeclared Latin-script entry with the language it reads as, not always English.

A text reads as a language when at least `MIN_HITS` distinct words of it are that
language's *telling* function words (`TELLING` times as frequent in it as in English: "les", "dans",
"los", "und"; not "son", "bon" or "war", which English uses too), and more than its
English function words. So "Bon-Ton CEO to resign" and "War in Ukraine: EU, UN, AI" read
as English, and so do all of uci-news-dev's 6,290 real English headlines (docs/stories.md,
twelfth session).

The function words are the `stop-words` package's lists (python-stop-words, BSD-3), less
the words they hold that name things (`NOT_FUNCTION_WORDS`); the frequencies wordfreq's
"small" lists (its data CC BY-SA 4.0), read from its files without importing wordfreq.
What is needed of both at run time is kept in `FUNCTION_WORDS_FILE` (derived from both,
under their terms), built by `build_function_words`, so that no process reads twenty
frequency lists to tell a language.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import cast

#: Latin-script languages besides English (`stop-words` and wordfreq codes).
LANGUAGES = (
    "fr", "es", "pt", "it", "de", "nl", "ca", "ro", "sv", "da", "nb", "fi", "pl", "cs",
    "sk", "hu", "tr", "id", "ms", "vi",
)  # fmt: skip
#: Fewer telling function words than this in a text decide nothing: "Lana Del Rey" or
#: "de Gaulle" in an English headline stays English.
MIN_HITS = 2
#: How much more frequent in its language than in English a function word must be to tell
#: that a text is in that language.
TELLING = 100.0
#: Distinct telling words that tell a language whatever the other words are; with fewer,
#: those must be more often words English's list lacks than words it holds (`reading`).
STRONG = 3
#: Of languages with as many telling words in a text, another than the first in
#: `LANGUAGES` is taken only if its function words there are this much more frequent in
#: it (Spanish and Catalan share "la", "de", "el": their weights differ in the third digit).
CLEARLY = 1.5
#: Tags for a language of `LANGUAGES` under another code (Norwegian's "no": Bokmål).
ALIASES = {"no": "nb"}


#: English's function words (and words of news that name no event), dropped from every
#: text's story terms (`dedup.terms.STOP_WORDS`, with Chinese's).
ENGLISH: frozenset[str] = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours out over own said
same says she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours new news one two first last year years day days week
may might must could us via per amid after over get gets got make makes made told tell report
reports reported according mr mrs ms update updated live latest watch video photos read more
monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow
exclusive breaking analysis opinion explainer factbox comment column editorial podcast
newsletter highlights recap
""".split()
)


@cache
def frequencies(language: str) -> dict[str, float]:
    """A language's word frequencies per token (wordfreq's "small" list: 20-60k words,
    20-50 ms; English's ~29k), kept."""
    return read_frequencies(language)


def package_folder(name: str) -> Path | None:
    """An installed package's folder, found without importing it (None: not installed)."""
    spec = importlib.util.find_spec(name)
    folders = spec.submodule_search_locations if spec is not None else None
    return Path(next(iter(folders))) if folders else None


def frequency_file(language: str) -> Path | None:
    """wordfreq's "small" list of a language, as a file (None: not there)."""
    folder = package_folder("wordfreq")
    path = folder / "data" / f"small_{language}.msgpack.gz" if folder is not None else None
    return path if path is not None and path.is_file() else None


def read_frequencies(language: str) -> dict[str, float]:
    """`frequencies`, read afresh (for a table built from several and not kept itself)."""
    # Read from wordfreq's file directly when it is there: importing wordfreq (ftfy,
    # langcodes, regex) costs ~0.2-0.5 s in every process that weighs words, for a table
    # its `get_frequency_dict` builds the same way (bucket i: frequency 10 ** (-i / 100)).
    path = frequency_file(language)
    if path is None:
        from wordfreq import get_frequency_dict

        found: dict[str, float] = get_frequency_dict(language, wordlist="small")
        return found
    import gzip

    import msgpack

    with gzip.open(path, "rb") as packed:
        data = msgpack.load(packed, raw=False)
    header = data[0]
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        raise ValueError(f"{path}: not a wordfreq word list (header {header!r})")
    table: dict[str, float] = {}
    for index, bucket in enumerate(data[1:]):
        frequency = 10 ** (-index / 100)
        for word in bucket:
            table[word] = frequency
    return table


#: Words the `stop-words` lists hold that name things a story may be about (work, state,
#: value, new, last...): kept. Read for French, Spanish, Portuguese and Italian (German's
#: and Dutch's lists hold none); the other languages' lists are taken as they are.
NOT_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "es": frozenset(
        "trabajo trabaja trabajan lugar momento verdad fuerza empleo estado estados valor uso "
        "sentido sentidos lado ejemplo tiempo parte fin mayor nuevo nueva nuevos nuevas último "
        "última últimos últimas ultimo primer primera primero primeros grandes total segundo "
        "segunda verdadero verdadera próximo próximos pasado pasada intento poder ex pro".split()
    ),
    "fr": frozenset(
        "personne personnes état nom point chose choses force mot droite valeur pièce parole "
        "sujet début essai nouveau nouveaux grande haut passé plein voie mine".split()
    ),
    "pt": frozenset(
        "trabalho trabalhar tempo parte estado novo nome horas povo caminho valor verdade "
        "verdadeiro corrente fim tipo cara ligado direita maioria último segundo".split()
    ),
    "it": frozenset(
        "lavoro persone grande gran primo nuovo nuovi fine nome gente volte lungo maggiore "
        "maggior ultimo doppio comprare promesso terzo quarto quinto secondo".split()
    ),
}
#: Where the function words and their frequencies are kept (`build_function_words`).
FUNCTION_WORDS_FILE = Path(__file__).parent / "data" / "function_words.json"


def build_function_words() -> dict[str, dict[str, object]]:
    """What `FUNCTION_WORDS_FILE` holds, from the `stop-words` lists and wordfreq: per
    language, its function words (one word of letters, not `ENGLISH`'s, not
    `NOT_FUNCTION_WORDS`) with their frequency in it; the telling ones; and the words of its
    list that are `ENGLISH`'s too (they do not count as English in a text of it).
    `python -m aggregator.wordlists` writes it; a test checks it is what this builds."""
    from stop_words import get_stop_words

    english = read_frequencies("en")
    built: dict[str, dict[str, object]] = {}
    for language in LANGUAGES:
        ours = read_frequencies(language)
        listed = sorted({w.casefold() for w in get_stop_words(language)})
        words = {
            w: ours.get(w, 0.0)
            for w in listed
            if w.isalpha()
            and len(w) > 1
            and w not in ENGLISH
            and w not in NOT_FUNCTION_WORDS.get(language, ())
        }
        built[language] = {
            "words": words,
            "telling": [w for w, f in words.items() if f > 0 and f >= TELLING * english.get(w, 0)],
            "english": [w for w in listed if w in ENGLISH],
        }
    return built


class FunctionWords:
    """The function words of `LANGUAGES` (`FUNCTION_WORDS_FILE`), and the language a text's
    words read as (the module docstring)."""

    def __init__(self, data: dict[str, dict[str, object]]) -> None:
        #: Each function word -> the bit mask of the `LANGUAGES` listing it.
        self.listed: dict[str, int] = {}
        self._frequency: list[dict[str, float]] = []
        self._telling: list[frozenset[str]] = []
        self._english: list[frozenset[str]] = []  # ENGLISH but for the language's own
        self._index = {language: bit for bit, language in enumerate(LANGUAGES)}
        for bit, language in enumerate(LANGUAGES):
            entry = data[language]
            words = cast(dict[str, float], entry["words"])
            for word in words:
                self.listed[word] = self.listed.get(word, 0) | 1 << bit
            self._frequency.append(words)
            self._telling.append(frozenset(cast(list[str], entry["telling"])))
            self._english.append(ENGLISH - frozenset(cast(list[str], entry["english"])))

    def language(self, words: list[str]) -> str | None:
        """The code (`LANGUAGES`) of the language `words` (case-folded, as cut) read as,
        or None: English, or too few telling function words of any language to say."""
        found = self.reading(words)
        return None if found is None else LANGUAGES[found]

    def reading(self, words: list[str]) -> int | None:
        """`language`, as its index in `LANGUAGES`: of the languages whose function words
        `words` hold, the one with the most distinct telling ones (on a tie, the first in
        `LANGUAGES` unless another's are clearly more frequent in it, `CLEARLY`: "os",
        "contra", "dos" are Spanish and Portuguese), if they are at least `MIN_HITS`,
        more than the distinct English function words among `words` (not counting those
        the language's own list holds: German's "in", "was", "an"), and, if they are fewer
        than `STRONG`, if the other words are more often words English's list lacks than
        words it holds (`_foreign`: "Mistral AI launches Le Chat" holds two French
        function words, and is English).
        Distinct: an "<em>" tag twice in an English title is not Portuguese."""
        masks = list(filter(None, map(self.listed.get, words)))  # in C: most texts hold none
        if len(masks) < MIN_HITS:
            return None
        seen = 0
        for mask in set(masks):
            seen |= mask
        best: tuple[int, float, int] | None = None
        for bit in range(len(LANGUAGES)):
            if seen >> bit & 1:
                told = len(self._telling[bit].intersection(words))
                if told < MIN_HITS:
                    continue
                frequency = self._frequency[bit]
                weight = sum(frequency.get(w, 0.0) for w in words)
                if (
                    best is None
                    or told > best[0]
                    or (told == best[0] and weight > CLEARLY * best[1])
                ):
                    best = (told, weight, bit)
        if best is None:
            return None
        told, _, bit = best
        if told <= len(self._english[bit].intersection(words)):
            return None
        if told < STRONG and not self._foreign(words):
            return None
        return bit

    def declared_or_read(self, declared: str | None, words: list[str]) -> int | None:
        """The language of `LANGUAGES` a text declares ("fr", "es-MX", "no": a feed's or
        an entry's tag) if its words hold one telling function word of it at least, more
        than English ones, and are not plainly English (`_foreign`, ties allowed): a
        headline too short to tell is read as declared, while an English text under a
        CMS's default tag is not; else the language its words read as (`reading`).
        English or another tag decides nothing: many feeds declare "en" whatever they hold."""
        if declared:
            primary = declared.replace("_", "-").partition("-")[0].casefold()
            bit = self._index.get(ALIASES.get(primary, primary))
            if bit is not None:
                told = len(self._telling[bit].intersection(words))
                english = len(self._english[bit].intersection(words))
                if told and told > english and self._foreign(words, ties=True):
                    return bit
        return self.reading(words)

    def _foreign(self, words: list[str], *, ties: bool = False) -> bool:
        """Whether the words that are no one's function words are more often (or, with
        `ties`, as often) words English's frequency list lacks than words it holds."""
        english = frequencies("en")
        rest = {w for w in words if len(w) > 1 and w not in self.listed and w not in ENGLISH}
        known = sum(w in english for w in rest)
        unknown = len(rest) - known
        return unknown >= known if ties else unknown > known

    def drop(self, words: list[str], reading: int | None) -> list[str]:
        """`words` without the function words of the language `reading` (None: as they are)."""
        if reading is None:
            return words
        listed, bit = self.listed, 1 << reading
        return [w for w in words if not listed.get(w, 0) & bit]

    def without(self, words: list[str], declared: str | None = None) -> list[str]:
        """`words` without the function words of the language they declare or read as
        (`declared_or_read`)."""
        return self.drop(words, self.declared_or_read(declared, words))


@cache
def function_words() -> FunctionWords:
    """The function words, read once (`FUNCTION_WORDS_FILE`: ~230 KB, a few ms)."""
    import json

    with FUNCTION_WORDS_FILE.open(encoding="utf-8") as file:
        return FunctionWords(json.load(file))


def latin_language(words: list[str]) -> str | None:
    """The language (`LANGUAGES` code) case-folded words of a Latin-script text read as, or
    None (English, or too few function words to say): `FunctionWords.language`."""
    return function_words().language(words)


if __name__ == "__main__":  # python -m aggregator.wordlists: write FUNCTION_WORDS_FILE
    import json

    FUNCTION_WORDS_FILE.parent.mkdir(exist_ok=True)
    text = json.dumps(build_function_words(), ensure_ascii=False, sort_keys=True)
    FUNCTION_WORDS_FILE.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {FUNCTION_WORDS_FILE} ({FUNCTION_WORDS_FILE.stat().st_size:,} bytes)")
