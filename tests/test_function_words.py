"""Other languages' function words (`wordlists.FunctionWords`): dropped from a text that
reads as that language, never from an English one; and the language an undeclared entry
is labelled with (`sources.language.detect_language`)."""

from __future__ import annotations

import json

import pytest

from aggregator.dedup.terms import _cut_words, entry_terms, prior_share, words
from aggregator.dedup.text import normalise
from aggregator.wordlists import FUNCTION_WORDS_FILE, build_function_words, function_words


def _language(text: str) -> str | None:
    return function_words().language(_cut_words(normalise(text))[0])


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Les agriculteurs bloquent les routes dans le sud de la France", "fr"),
        ("Los agricultores cortan las carreteras en el sur de España", "es"),
        ("Die Bauern blockieren die Straßen im Süden des Landes", "de"),
        ("Os agricultores bloqueiam as estradas contra os preços dos combustíveis", "pt"),
        # Words English's list holds too ("in", "was", "over", "do") count for the language
        # whose own list holds them, not as English.
        ("Het kabinet is in Den Haag gevallen over het asielbeleid van de regering", "nl"),
        ("Die Regierung in Berlin plant neue Steuern für das nächste Jahr", "de"),
        ("Presidente do Brasil se reúne com o papa no Vaticano", "pt"),
        # English, whatever foreign function words it holds: a company, a singer, a name.
        ("Bon-Ton CEO to resign", None),
        ("Lana Del Rey tops the charts", None),
        ("Charles de Gaulle airport closed by strike", None),
        ("War in Ukraine: EU and UN leaders discuss AI", None),
        ("Three die as storms hit Los Angeles", None),
        # Two French (Spanish) function words, and the rest English: English.
        ("Mistral AI launches Le Chat", None),
        ("Des Moines AI summit", None),
        ("Tour de France AI", None),
        ("Los Angeles to Las Vegas", None),
        ("Je suis Charlie rally in Paris", None),
        ("De La Soul catalogue returns to streaming", None),
        # Languages whose words no frequency list of ours holds read as theirs too.
        ("Regeringen och oppositionen är överens om budgeten för nästa år", "sv"),
        ("Rząd i opozycja porozumieli się w sprawie budżetu na przyszły rok", "pl"),
        ("Macron", None),
    ],
)
def test_a_text_reads_as_the_language_of_its_telling_function_words(
    text: str, language: str | None
) -> None:
    assert _language(text) == language


def test_function_words_are_dropped_only_from_a_text_of_their_language() -> None:
    french = words(normalise("Les agriculteurs bloquent les routes dans le sud de la France"))
    assert french == ["agriculteur", "bloquent", "route", "sud", "france"]
    # In English, "die", "war", "son" are words: nothing but English's stop words goes.
    assert words(normalise("Son of war hero to die in court fight")) == [
        "son", "war", "hero", "die", "court", "fight",
    ]  # fmt: skip
    # Words the lists hold that name what a story is about stay ("empleo", "estado").
    assert words(normalise("El Gobierno aprueba la reforma del empleo y del Estado")) == [
        "gobierno", "aprueba", "reforma", "empleo", "estado",
    ]  # fmt: skip
    # A title and its lead are read together: a headline alone often holds too few.
    counts = entry_terms(
        normalise("Sánchez convoca elecciones anticipadas para julio"),
        normalise("El presidente del Gobierno anunció hoy que los españoles votarán en julio."),
    )
    assert "para" not in counts and "los" not in counts and counts["sánchez"] == 2


#: Real headlines (uci-news-dev: UCI News Aggregator, F. Gasparetti, CC BY 4.0; see
#: ../shared/data/uci-news-dev/README.md) holding words other languages list as function
#: words: single letters ("U.S.", "S&P"), "son", "bon", "ton", "em" (an "<em>" tag twice
#: is one telling Portuguese word, not two). All 6,290 of its headlines read as English
#: (measured: docs/stories.md).
REAL_ENGLISH = [
    "U.S. Stocks Retreat With Emerging Equities, Metals",
    "J.C. Penney Company, Inc. (JCP) Upgraded To Buy By Citi",
    "S&P 500 Movers: URBN, DGX",
    "EM ASIA FX-Asian currencies rise as yuan steadies; rupee shines",
    "SoftBank's Son Vows 'Price War' on T-Mobile Deal",
    "Bon-Ton narrows loss in 2013",
    "GM faces investigations o ver slow response to deadly defect",
    "Early movers: DKS, JCP, DD, M, TGT, TMUS, S & more",
    "Son seeks U.S. price war, T-Mobile",
    "The Bon-Ton Stores Inc.: The Bon-Ton Stores, Inc. Announces Fourth Quarter  ...",
    "Bon-Ton CEO to resign",
    "Mt. Gox files for U.S. bankruptcy protection",
]


def test_real_english_headlines_read_as_english() -> None:
    tagged = [
        "12 Possible Endings for Tonight's <em>Bachelor</em> Finale",
        "Zac Efron Is Totally Ready For A Fourth <em>High School Musical</em> Movie",
    ]
    assert [t for t in REAL_ENGLISH + tagged if _language(t) is not None] == []


def test_a_word_english_does_not_know_weighs_as_common_as_its_own_language_says() -> None:
    """The words "gouvernement" and "presidente" are common, not names: their prior share is
    French's and Spanish's frequency, as "government" takes English's; a plural the
    S-stemmer cut ("elecciones" -> "eleccione") is found as written. A word no list knows
    is rare."""
    assert prior_share("gouvernement") > 100 * prior_share("deepseek")
    assert prior_share("presidente") > 100 * prior_share("deepseek")
    assert prior_share("eleccione") == prior_share("elecciones") > 100 * prior_share("deepseek")
    assert prior_share("government") > 100 * prior_share("deepseek")


def test_the_shipped_function_words_are_what_the_lists_make() -> None:
    """aggregator/data/function_words.json is `build_function_words` of the installed
    `stop-words` and wordfreq (regenerate: python -m aggregator.wordlists)."""
    with FUNCTION_WORDS_FILE.open(encoding="utf-8") as file:
        shipped = json.load(file)
    built = build_function_words()
    # The frequencies are 10 ** (-i / 100): another libm may round a last bit otherwise.
    for data in (shipped, built):
        for entry in data.values():
            entry["words"] = {w: round(f, 12) for w, f in entry["words"].items()}
    assert shipped == built


def test_a_declared_language_decides_for_a_headline_too_short_to_tell() -> None:
    """One telling word is too few to read a headline as French; a feed that declares
    French says so (its function words go); a declared "en" decides nothing (feeds declare
    it whatever they hold), nor does a tag of no Latin-script language."""
    title = normalise("Macron réélu pour cinq ans")
    assert "pour" in entry_terms(title, "") and "pour" in words(title)
    assert words(title, "fr") == ["macron", "réélu", "cinq", "ans"]  # topics' words alike
    assert "pour" not in entry_terms(title, "", "fr-FR")
    assert "pour" in entry_terms(title, "", "en")
    assert "pour" in entry_terms(title, "", "zh-Hans")
    assert "pour" not in entry_terms(title, "", "fr_CA")
    # A CMS's default tag over an English text: its words ("die", "war", "man") stay.
    english = normalise("War in Ukraine: man shot, Putin will die hard, son says")
    assert {"war", "man", "die", "son"} <= set(entry_terms(english, "", "de"))
    french = normalise("Les agriculteurs bloquent les routes dans le sud")
    assert "dans" not in entry_terms(french, "", "en-US")  # read as French all the same
