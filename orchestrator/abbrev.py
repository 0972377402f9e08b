"""Model names cut to a width without two of them looking alike (pure).

The twelve names share long prefixes and suffixes: `musicai_with_backing_vocals` and
`musicai_without_backing_vocals` differ in the middle, the two Mel-band Roformers only at
the end. A plain cut (`musicai_with_backing_v…`, `musicai_with…_vocals`) shows one of them
in a form that could stand for the other.

A cut name is `head…tail`, where `…` hides at least nothing: it could stand for any name
that starts with `head` and ends with `tail` (`stands_for`). A name is shown whole when it
fits; otherwise as the first of these forms that fits and could stand for no other name
(of those shown, nor of the catalogue the reader knows):

    1. the last word kept whole, the start filling the rest:   `mel_band_rof…gabox`
       (then the last two words, three...)
    2. the start alone:                                        `musicai_with_backing_v…`
    3. any split, the tail growing a character at a time:      `m…t_backing_vocals`

When even that fails (a width of a few columns), the plain cut is the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

ELLIPSIS = "…"


def stands_for(shown: str, name: str) -> bool:
    """Whether a reader could take `shown` (a whole name, or `head…tail`) for `name`."""
    if ELLIPSIS not in shown:
        return shown == name
    head, _, tail = shown.partition(ELLIPSIS)
    return len(name) >= len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


def fit_names(names: Iterable[str], width: int, *, known: Iterable[str] = ()) -> dict[str, str]:
    """Each of `names` as shown in `width` columns; see the module docstring.

    `known`: other names a reader may think of (the catalogue's); no cut form could stand
    for any of them either.
    """
    names = list(dict.fromkeys(names))
    everyone = set(names) | set(known)
    return {name: _fit(name, width, everyone - {name}) for name in names}


def _fit(name: str, width: int, others: set[str]) -> str:
    if len(name) <= width:
        return name
    if width < 2:
        return name[: max(width, 0)]
    for shown in _cuts(name, width):
        if not any(stands_for(shown, other) for other in others):
            return shown
    return name[: width - 1] + ELLIPSIS


def _cuts(name: str, width: int) -> Iterator[str]:
    """The cut forms of `name` in `width` columns, in order of preference."""
    room = width - 1  # columns for the head and the tail around the ellipsis
    words = name.split("_")
    for kept in range(1, len(words)):
        tail = "_".join(words[-kept:])
        if len(tail) >= room:
            break
        yield name[: room - len(tail)] + ELLIPSIS + tail
    yield name[:room] + ELLIPSIS
    for size in range(1, room):
        yield name[: room - size] + ELLIPSIS + name[-size:]
