"""Caption grammar (English and Chinese) and its exact inverse.

A caption is a sentence template whose slots are filled with noun phrases ({np},
{np0}, {np1}) and synonym-bearing words ({rel}, {rel_it}, {side}, {pos}). The parser
compiles the very same templates and lexicon into regular expressions, so every
caption the generator can produce parses back to the spec it came from.
"""

from __future__ import annotations

import re
from functools import lru_cache
from string import Formatter

import numpy as np

from .spec import ObjectGroup, Spec
from .vocab import COLOURS

LANGUAGES = ("en", "zh")
CJK = re.compile(r"[\u4e00-\u9fff]")  # the CJK unified ideographs: Chinese text

# Sentence templates by form: one group, one positioned group, two groups, two related groups.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "one": ("{np}", "a photo of {np}", "an image of {np}", "a picture showing {np}", "a simple drawing of {np}"),
        "pos": ("{np} {pos}", "a photo of {np} {pos}", "an image with {np} {pos}"),
        "two": ("{np0} and {np1}", "a photo of {np0} and {np1}", "{np0} together with {np1}",
                "an image of {np0} and {np1}"),
        "rel": ("{np0} {rel} {np1}", "a photo of {np0} {rel} {np1}", "{np1} with {np0} {rel_it}",
                "{np0} is {rel} {np1}"),
    },
    "zh": {
        "one": ("{np}", "一张{np}的照片", "图中有{np}", "画面上有{np}", "一幅画着{np}的图"),
        "pos": ("{np}在画面的{pos}", "画面的{pos}有{np}", "{np}位于图片{pos}"),
        "two": ("{np0}和{np1}", "一张有{np0}和{np1}的照片", "图中有{np0}以及{np1}", "{np0}与{np1}"),
        "rel": ("{np0}在{np1}的{side}", "{np1}的{side}有{np0}", "{np0}位于{np1}{side}",
                "一张{np0}在{np1}{side}的照片"),
    },
}

# Lexicon: value -> synonyms. Shapes list (singular, plural) forms; the first synonym is canonical.
LEXICON: dict[str, dict[str, dict]] = {
    "en": {
        "colour": {c: (c,) for c in COLOURS},
        "shape": {
            "circle": (("circle", "circles"), ("disc", "discs")),
            "square": (("square", "squares"),),
            "triangle": (("triangle", "triangles"),),
            "star": (("star", "stars"),),
            "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
            "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
        },
        "size": {"small": ("small", "little"), "large": ("large", "big")},
        "count": {1: ("a", "one"), 2: ("two",), 3: ("three",), 4: ("four",)},
        "rel": {"left of": ("to the left of", "on the left side of", "left of"),
                "right of": ("to the right of", "on the right side of", "right of"),
                "above": ("above", "over"), "below": ("below", "under", "beneath")},
        "rel_it": {"left of": ("on its left", "to its left"), "right of": ("on its right", "to its right"),
                   "above": ("above it",), "below": ("below it", "under it")},
        "pos": {"left": ("on the left", "at the left"), "right": ("on the right", "at the right"),
                "top": ("at the top",), "bottom": ("at the bottom",), "center": ("in the center", "in the middle")},
    },
    "zh": {
        "colour": {"red": ("红色",), "orange": ("橙色",), "yellow": ("黄色",), "green": ("绿色",),
                   "blue": ("蓝色",), "purple": ("紫色",), "pink": ("粉色", "粉红色"), "brown": ("棕色", "褐色")},
        "shape": {
            "circle": (("圆形", "圆形"), ("圆", "圆")),
            "square": (("正方形", "正方形"), ("方块", "方块")),
            "triangle": (("三角形", "三角形"),),
            "star": (("星形", "星形"), ("五角星", "五角星")),
            "cross": (("十字形", "十字形"), ("十字", "十字")),
            "diamond": (("菱形", "菱形"),),
        },
        "size": {"small": ("小",), "large": ("大",)},
        "count": {1: ("一个", ""), 2: ("两个",), 3: ("三个",), 4: ("四个",)},  # 个: the measure word
        "side": {"left of": ("左边", "左侧"), "right of": ("右边", "右侧"),
                 "above": ("上方", "上面"), "below": ("下方", "下面")},
        "pos": {"left": ("左边", "左侧"), "right": ("右边", "右侧"), "top": ("上方", "顶部"),
                "bottom": ("下方", "底部"), "center": ("中间", "中央")},
    },
}

NOUN_PHRASE_SLOTS = ("np", "np0", "np1")


def caption(spec: Spec, rng: np.random.Generator, language: str = "en", template: str | None = None) -> str:
    """A random paraphrase of `spec` (or the given `template` of the spec's form)."""
    template = template or _pick(rng, TEMPLATES[language][_form(spec)])
    words = {}
    for slot in _slots(template):
        if slot in NOUN_PHRASE_SLOTS:
            group = spec.groups[0 if slot in ("np", "np0") else 1]
            words[slot] = _noun_phrase(group, rng, language)
        else:
            value = spec.groups[0].position if slot == "pos" else spec.relation
            words[slot] = _pick(rng, LEXICON[language][slot][value])
    return template.format(**words)


def parse_caption(text: str) -> Spec:
    """Invert `caption` (language auto-detected); raises ValueError on text outside the grammar."""
    language = language_of(text)
    text = _normalise(text, language)
    for form, templates in TEMPLATES[language].items():
        for template in templates:
            match = _template_regex(language, template).fullmatch(text)
            if match:
                return _spec_from_match(match, form, language)
    raise ValueError(f"caption not in the grammar: {text!r}")


def english_caption(text: str) -> str:
    """The English caption of the scene a caption in any language names (deterministic); ValueError off the grammar."""
    return caption(parse_caption(text), np.random.default_rng(0), "en")


def language_of(text: str) -> str:
    """A caption's language: "zh" when it has any CJK character, else "en"."""
    return "zh" if CJK.search(text) else "en"


def _form(spec: Spec) -> str:
    if spec.relation:
        return "rel"
    if len(spec.groups) == 2:
        return "two"
    return "pos" if spec.groups[0].position else "one"


def _slots(template: str) -> list[str]:
    return [name for _, name, _, _ in Formatter().parse(template) if name]


def _pick(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _noun_phrase(group: ObjectGroup, rng: np.random.Generator, language: str) -> str:
    lex = LEXICON[language]
    count = _pick(rng, lex["count"][group.count])
    size = _pick(rng, lex["size"][group.size]) if group.size else ""
    colour = _pick(rng, lex["colour"][group.colour]) if group.colour else ""
    shape = _pick(rng, lex["shape"][group.shape])[1 if group.count > 1 else 0]
    if language == "zh":
        size = size + "的" if size else ""
        colour_de = "的" if colour and not size and rng.random() < 0.5 else ""
        return count + size + colour + colour_de + shape
    rest = " ".join(w for w in (size, colour, shape) if w)
    if count == "a" and rest[0] in "aeiou":
        count = "an"
    return f"{count} {rest}"


def _normalise(text: str, language: str) -> str:
    text = text.strip().rstrip(".。")
    if language == "zh":
        return re.sub(r"\s+", "", text)
    return re.sub(r"\s+", " ", text.lower())


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True) if w)


def _noun_phrase_regex(prefix: str, language: str) -> str:
    lex = LEXICON[language]
    counts = _alternation(w for ws in lex["count"].values() for w in ws)
    sizes = _alternation(w for ws in lex["size"].values() for w in ws)
    colours = _alternation(w for ws in lex["colour"].values() for w in ws)
    shapes = _alternation(w for forms in lex["shape"].values() for pair in forms for w in pair)
    if language == "zh":
        return (f"(?P<{prefix}_count>{counts})?(?:(?P<{prefix}_size>{sizes})的)?"
                f"(?:(?P<{prefix}_colour>{colours})的?)?(?P<{prefix}_shape>{shapes})")
    return (f"(?P<{prefix}_count>{counts}|an) (?:(?P<{prefix}_size>{sizes}) )?"
            f"(?:(?P<{prefix}_colour>{colours}) )?(?P<{prefix}_shape>{shapes})")


@lru_cache(maxsize=None)
def _template_regex(language: str, template: str) -> re.Pattern:
    parts = []
    for literal, slot, _, _ in Formatter().parse(template):
        parts.append(re.escape(literal))
        if slot in NOUN_PHRASE_SLOTS:
            parts.append(_noun_phrase_regex(slot, language))
        elif slot:
            parts.append(f"(?P<{slot}>{_alternation(w for ws in LEXICON[language][slot].values() for w in ws)})")
    return re.compile("".join(parts))


@lru_cache(maxsize=None)
def _reverse_lexicon(language: str) -> dict[str, dict[str, object]]:
    """word -> value for every lexicon table (shapes: both singular and plural)."""
    reverse: dict[str, dict[str, object]] = {}
    for table, entries in LEXICON[language].items():
        reverse[table] = {}
        for value, words in entries.items():
            for w in words:
                for form in (w if isinstance(w, tuple) else (w,)):
                    reverse[table][form] = value
    reverse["count"]["an"] = 1
    reverse["count"][""] = 1  # zh may drop "一个"
    return reverse


def _spec_from_match(match: re.Match, form: str, language: str) -> Spec:
    words = {k: v for k, v in match.groupdict().items() if v is not None}
    reverse = _reverse_lexicon(language)

    def lookup(table: str, key: str):
        return reverse[table][words[key]] if key in words else None

    position = lookup("pos", "pos")
    groups = tuple(
        ObjectGroup(
            shape=lookup("shape", f"{p}_shape"), colour=lookup("colour", f"{p}_colour"),
            count=reverse["count"][words.get(f"{p}_count", "")], size=lookup("size", f"{p}_size"),
            position=position,
        )
        for p in (("np",) if form in ("one", "pos") else ("np0", "np1"))
    )
    relation = next((lookup(slot, slot) for slot in ("rel", "rel_it", "side") if slot in words), None)
    return Spec(groups, relation)
