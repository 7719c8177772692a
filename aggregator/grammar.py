"""Counted nouns in messages and logs ("1 feed", "2 stories"): the one home of the rule."""


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """ "1 entry", "2 entries": a number and its noun, in the number's grammatical number.

    Args:
        number: How many.
        singular: The noun for one ("feed", "new entry").
        plural: The noun for any other number, when adding "s" (or "y" -> "ies" after a
            consonant) does not make it.
    """
    if number == 1:
        return f"{number} {singular}"
    if plural is None:
        if singular.endswith("y") and singular[-2:-1] not in ("a", "e", "i", "o", "u"):
            plural = f"{singular[:-1]}ies"
        else:
            plural = f"{singular}s"
    return f"{number} {plural}"


def entries_counted(entries: int, late: int) -> str:
    """A digest's entries in words, with how many arrived late if any: "4 entries (1 late)"."""
    return counted(entries, "entry") + (f" ({late} late)" if late else "")
