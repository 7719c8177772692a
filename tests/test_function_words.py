"""Other languages' function words (`wordlists.FunctionWords`): dropped from a text that
reads as that language, never from an English one; and the language an undeclared entry
is labelled with (`sources.language.detect_language`)."""

from __future__ import annotations

import pytest

from aggregator.dedup.terms import _cut_words, entry_terms, prior_share, words
from aggregator.dedup.text import normalise
from aggregator.wordlists import function_words


def _language(text: str) -> str | None:
    return function_words().language(_cut_words(normalise(text))[0])


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Les agriculteurs bloquent les routes dans le sud de la France", "fr"),
        ("Los agricultores cortan las carreteras en el sur de España", "es"),
        ("Die Bauern blockieren die Straßen im Süden des Landes", "de"),
        ("Os agricultores bloqueiam as estradas contra os preços dos combustíveis", "pt"),
        # English, whatever foreign function words it holds: a company, a singer, a name.
        ("Bon-Ton CEO to resign", None),
        ("Lana Del Rey tops the charts", None),
        ("Charles de Gaulle airport closed by strike", None),
        ("War in Ukraine: EU and UN leaders discuss AI", None),
        ("Three die as storms hit Los Angeles", None),
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
    # A title and a lead are read apart: a French lead under an English title loses its own.
    counts = entry_terms(normalise("AI summit"), normalise("Le sommet de Paris pour les IA"))
    assert set(counts) == {"ai", "summit", "sommet", "paris", "ia"}


#: Real headlines (uci-news-dev: UCI News Aggregator, F. Gasparetti, CC BY 4.0; see
#: ../shared/data/uci-news-dev/README.md) holding words other languages list as function
#: words: single letters ("U.S.", "S&P"), "son", "bon", "ton", "em". Of its 6,290 headlines
#: one reads as another language (measured: docs/stories.md), "<em>Bachelor</em>", whose
#: tag's "em" twice is Portuguese's "in", and it loses only that tag.
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
    assert [t for t in REAL_ENGLISH if _language(t) is not None] == []
    tagged = "12 Possible Endings for Tonight's <em>Bachelor</em> Finale"
    assert _language(tagged) == "pt"
    assert words(normalise(tagged)) == ["possible", "ending", "tonight", "bachelor", "finale"]


def test_a_word_english_does_not_know_weighs_as_common_as_its_own_language_says() -> None:
    """The words "gouvernement" and "presidente" are common, not names: their prior share is
    French's and Spanish's frequency, as "government" takes English's; a plural the
    S-stemmer cut ("elecciones" -> "eleccione") is found as written. A word no list knows
    is rare."""
    assert prior_share("gouvernement") > 100 * prior_share("deepseek")
    assert prior_share("presidente") > 100 * prior_share("deepseek")
    assert prior_share("eleccione") == prior_share("elecciones") > 100 * prior_share("deepseek")
    assert prior_share("government") > 100 * prior_share("deepseek")
