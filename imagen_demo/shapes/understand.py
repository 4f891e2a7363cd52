"""What the shapes world makes of a prompt: the scene it parses to, or the words it does not know and nearby
prompts it does read.

Pure text work on the grammar's own templates and lexicon (no model, no sampling), so a demo can run it on
every keystroke and show a user why a prompt will or will not draw what they meant.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from string import Formatter

import numpy as np

from .captions import LEXICON, TEMPLATES, caption, language_of, parse_caption
from .spec import ObjectGroup, Spec, sample_category_spec
from .vocab import CATEGORIES

EXAMPLES_PER_CATEGORY = 8  # the example captions suggestions are picked from
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class Reading:
    """A prompt as the world reads it: its spec, or (outside the grammar) unknown words and nearby prompts."""

    prompt: str
    spec: Spec | None
    unknown: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()


def read(prompt: str) -> Reading:
    try:
        return Reading(prompt, parse_caption(prompt))
    except ValueError:
        pass
    language = language_of(prompt)
    unknown = unknown_words(prompt, language)
    return Reading(prompt, None, unknown, suggestions(prompt, unknown, language))


@lru_cache(maxsize=None)
def vocabulary(language: str) -> frozenset[str]:
    """Every word the grammar writes: English by word, Chinese as template and lexicon pieces (no spaces)."""
    pieces = [literal for templates in TEMPLATES[language].values() for template in templates
              for literal, _, _, _ in Formatter().parse(template)]
    for table in LEXICON[language].values():
        for words in table.values():
            for word in words:
                pieces += list(word) if isinstance(word, tuple) else [word]
    if language == "zh":
        return frozenset(p for p in pieces + ["的"] if p)  # 的 joins size and colour to the shape
    return frozenset(w for p in pieces + ["an"] for w in p.split())


def unknown_words(prompt: str, language: str) -> tuple[str, ...]:
    """The prompt's words (Chinese: runs of characters) that the grammar never writes, in order, once each."""
    known = vocabulary(language)
    if language == "en":
        return tuple(dict.fromkeys(w for w in re.findall(r"[^\s.,;:!?]+", prompt.lower()) if w not in known))
    text, longest = re.sub(r"[\s。，,.]", "", prompt), max(map(len, known))
    unknown, run, i = [], "", 0
    while i < len(text):  # greedy longest match against the known pieces
        piece = next((text[i:i + n] for n in range(min(longest, len(text) - i), 0, -1) if text[i:i + n] in known), None)
        if piece is None:
            run, i = run + text[i], i + 1
            continue
        if run:
            unknown.append(run)
        run, i = "", i + len(piece)
    return tuple(dict.fromkeys(unknown + [run] if run else unknown))


@lru_cache(maxsize=None)
def example_prompts(language: str) -> tuple[str, ...]:
    """A fixed set of captions over every category (same every call)."""
    rng = np.random.default_rng(0)
    return tuple(caption(sample_category_spec(rng, category), rng, language)
                 for category in CATEGORIES for _ in range(EXAMPLES_PER_CATEGORY))


def suggestions(prompt: str, unknown: tuple[str, ...], language: str) -> tuple[str, ...]:
    """The prompt with each unknown word swapped for the closest known one (when that parses), then the closest
    example prompts."""
    corrected = prompt.lower() if language == "en" else prompt
    for word in unknown:
        close = difflib.get_close_matches(word, vocabulary(language), n=1)
        if close:
            corrected = corrected.replace(word, close[0])
    try:
        parse_caption(corrected)
        found = [corrected]
    except ValueError:
        found = []
    nearby = difflib.get_close_matches(prompt.lower(), example_prompts(language), n=MAX_SUGGESTIONS, cutoff=0)
    return tuple(dict.fromkeys(found + nearby))[:MAX_SUGGESTIONS]


def describe_group(group: ObjectGroup) -> str:
    """E.g. "2 × small green star", "1 × circle (any colour), on the left"."""
    words = " ".join(w for w in (group.size, group.colour, group.shape) if w)
    text = f"{group.count} × {words}" + ("" if group.colour else " (any colour)")
    return text + (f", {LEXICON['en']['pos'][group.position][0]}" if group.position else "")


def describe(reading: Reading, suggest: bool = True) -> str:
    """Markdown for a demo: the parsed scene, or the unknown words and (with `suggest`) prompts the world reads."""
    if reading.spec is not None:
        spec = reading.spec
        groups = [f"**{describe_group(g)}**" for g in spec.groups]
        joined = f" {LEXICON['en']['rel'][spec.relation][0]} ".join(groups) if spec.relation else " and ".join(groups)
        return f"**Understood as** ({spec.category.replace('_', ' ')}): {joined}"
    if reading.unknown:
        lead = "**Not in the shapes world.** Words it does not know: " + ", ".join(f"`{w}`" for w in reading.unknown)
    else:
        lead = "**Not in the shapes world's grammar**: every word is known, but not the sentence"
    return f"{lead}." + (" Prompts it reads: " + "; ".join(f"“{s}”" for s in reading.suggestions) if suggest else "")
