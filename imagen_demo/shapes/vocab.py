"""The closed vocabulary of the shapes world.

Everything that a caption can assert is drawn from these tuples, so the grammar,
the scene sampler and the verifier can never disagree about what exists.
"""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")

# Saturated sRGB colours, pairwise >= 42 CIELAB units apart (see tests), every one
# with chroma >= 40 so none can be confused with the achromatic backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 145, 25),
    "yellow": (240, 220, 40),
    "green": (40, 165, 60),
    "blue": (30, 105, 225),
    "purple": (150, 45, 175),
    "pink": (250, 130, 200),
    "brown": (135, 80, 30),
}

SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
MAX_COUNT = 4

# Same names as GenEval's task families so results read the same way.
CATEGORIES: tuple[str, ...] = (
    "single_object", "two_object", "counting", "colors", "position", "color_attr",
)

# Object side length as a fraction of the image side. Unsized objects are drawn
# between the two named ranges so "small"/"large" are only ever seen with the word.
SIZE_RANGES: dict[str | None, tuple[float, float]] = {
    "small": (0.14, 0.18),
    None: (0.19, 0.24),
    "large": (0.25, 0.30),
}
