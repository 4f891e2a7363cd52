"""Self-tests of the shapes verifier: true renders pass, mismatched pairs fail, each check kind can fail."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from imagen_demo.shapes import (
    CATEGORIES, CHECK_KINDS, COLOURS, ObjectGroup, Scene, Spec, detect_objects, render, sample_example,
    sample_scene, verify,
)
from imagen_demo.shapes.scene import Background, ObjectInstance

N_EXAMPLES = 150  # per size; at >= 0.99 this allows at most one failure
SIZES = (64, 256)


@pytest.fixture(scope="module")
def examples():
    """Random examples of every category from both splits, each rendered at 64 and 256 px."""
    rng = np.random.default_rng(2024)
    return [sample_example(rng, SIZES, split=("train", "test")[i % 2], category=CATEGORIES[i % len(CATEGORIES)])
            for i in range(N_EXAMPLES)]


def _failure_report(spec: Spec, result) -> str:
    failed = [f"{c.name} ({c.detail})" for c in result.checks if not c.passed]
    return f"{spec.to_json()}: {failed}"


@pytest.mark.parametrize("size", SIZES)
def test_true_renders_pass(examples, size, record_property):
    start = time.perf_counter()
    results = [verify(ex.spec, ex.images[size]) for ex in examples]
    elapsed = time.perf_counter() - start
    rate = float(np.mean([r.passed for r in results]))
    record_property(f"true_render_pass_rate_{size}", rate)
    print(f"\ntrue renders at {size}px: pass rate {rate:.3f} over {len(results)} ({elapsed:.2f}s)")
    assert {ex.spec.category for ex in examples} == set(CATEGORIES)
    failures = [_failure_report(ex.spec, r) for ex, r in zip(examples, results) if not r.passed]
    assert rate >= 0.99, failures
    for r in results:
        assert r.checks and {c.kind for c in r.checks} <= set(CHECK_KINDS)
        assert all(type(c.passed) is bool for c in r.checks)
        json.dumps(r.to_dict())  # results are saved as JSON by evaluation scripts
        assert r.score == 1.0 if r.passed else r.score < 1.0


def test_true_renders_detect_every_object_at_its_place(examples):
    """Beyond pass/fail: the detector finds exactly the scene's objects, near their true centres."""
    for ex in examples[:60]:
        for size in SIZES:
            found = detect_objects(ex.images[size])
            assert len(found) == len(ex.scene.objects), (ex.spec, size, found)
            for o in ex.scene.objects:
                nearest = min(found, key=lambda d: (d.x - o.x) ** 2 + (d.y - o.y) ** 2)
                assert abs(nearest.x - o.x) < 0.05 and abs(nearest.y - o.y) < 0.05
                assert (nearest.colour, nearest.shape) == (o.colour, o.shape)


def test_mismatched_pairs_fail(examples, record_property):
    rng = np.random.default_rng(7)
    n = len(examples)
    passed = []
    for i in range(n):
        j = (i + int(rng.integers(1, n))) % n  # any other example
        if examples[i].spec == examples[j].spec:
            continue
        passed.append(verify(examples[i].spec, examples[j].images[64]).passed)
    rate = float(np.mean(passed))
    record_property("mismatched_pass_rate", rate)
    print(f"\nmismatched pairs at 64px: pass rate {rate:.3f} over {len(passed)}")
    assert len(passed) >= 0.9 * n
    assert rate < 0.2


# ---------------------------------------------------------------------------------------------- hand-made cases

LIGHT = Background("plain", (232, 232, 232), (232, 232, 232), 0.0, 0, 0.0)
DARK_VARIED = Background("varied", (35, 36, 34), (60, 60, 61), 120.0, 99, 5.0)


def _scene(*objects, background=LIGHT) -> Scene:
    """objects: (group, shape, colour, x, y, side)."""
    return Scene(tuple(ObjectInstance(g, shape, colour, COLOURS[colour], x, y, side, 2.0)
                       for g, shape, colour, x, y, side in objects), background)


def _by_kind(result) -> dict[str, bool]:
    kinds: dict[str, bool] = {}
    for c in result.checks:
        kinds[c.kind] = kinds.get(c.kind, True) and c.passed
    return kinds


@pytest.fixture(params=[(64, LIGHT), (256, DARK_VARIED)], ids=["64-light", "256-dark-varied"])
def setting(request):
    return request.param


def test_wrong_colour_fails_the_colour_check(setting):
    size, bg = setting
    image = render(_scene((0, "circle", "blue", 0.5, 0.5, 0.22), background=bg), size)
    assert verify(Spec((ObjectGroup("circle", "blue"),)), image).passed
    kinds = _by_kind(verify(Spec((ObjectGroup("circle", "red"),)), image))
    assert kinds["colour"] is False
    assert kinds["shape"] is True


def test_wrong_shape_fails_the_shape_check(setting):
    size, bg = setting
    image = render(_scene((0, "star", "green", 0.5, 0.5, 0.22), background=bg), size)
    assert verify(Spec((ObjectGroup("star", "green"),)), image).passed
    kinds = _by_kind(verify(Spec((ObjectGroup("square", "green"),)), image))
    assert kinds["shape"] is False and kinds["object"] is False
    assert kinds["colour"] is True


def test_wrong_count_fails_the_count_check(setting):
    size, bg = setting
    image = render(_scene((0, "star", "red", 0.25, 0.3, 0.2), (0, "star", "red", 0.72, 0.7, 0.2), background=bg), size)
    assert verify(Spec((ObjectGroup("star", "red", count=2),)), image).passed
    for wrong in (1, 3, 4):
        kinds = _by_kind(verify(Spec((ObjectGroup("star", "red", count=wrong),)), image))
        assert kinds["count"] is False, wrong
        assert kinds["colour"] and kinds["shape"] and kinds["object"]


def test_swapped_relation_fails_the_relation_check(setting):
    size, bg = setting
    circle, square = ObjectGroup("circle", "red"), ObjectGroup("square", "blue")
    image = render(_scene((0, "circle", "red", 0.25, 0.5, 0.2), (1, "square", "blue", 0.75, 0.52, 0.2),
                          background=bg), size)
    assert verify(Spec((circle, square), "left of"), image).passed
    assert verify(Spec((square, circle), "right of"), image).passed
    for spec in (Spec((circle, square), "right of"), Spec((square, circle), "left of"),
                 Spec((circle, square), "above"), Spec((circle, square), "below")):
        kinds = _by_kind(verify(spec, image))
        assert kinds["relation"] is False, spec.relation
        assert kinds["object"] and kinds["colour"] and kinds["shape"] and kinds["count"]


def test_swapped_relation_on_sampled_scenes():
    """A sampled layout for "a R b" fails "a R' b" for every other relation R'."""
    rng = np.random.default_rng(3)
    groups = (ObjectGroup("triangle", "orange"), ObjectGroup("diamond", "purple"))
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    for relation in opposite:
        image = render(sample_scene(Spec(groups, relation), rng), 64)
        assert verify(Spec(groups, relation), image).passed
        assert _by_kind(verify(Spec(groups, opposite[relation]), image))["relation"] is False


def test_wrong_size_fails_the_size_check(setting):
    size, bg = setting
    image = render(_scene((0, "triangle", "yellow", 0.5, 0.5, 0.28), background=bg), size)
    assert verify(Spec((ObjectGroup("triangle", "yellow", size="large"),)), image).passed
    kinds = _by_kind(verify(Spec((ObjectGroup("triangle", "yellow", size="small"),)), image))
    assert kinds["size"] is False and kinds["shape"] and kinds["colour"]


def test_wrong_position_fails_the_position_check(setting):
    size, bg = setting
    image = render(_scene((0, "cross", "pink", 0.18, 0.5, 0.2), background=bg), size)
    assert verify(Spec((ObjectGroup("cross", "pink", position="left"),)), image).passed
    for wrong in ("right", "top", "bottom", "center"):
        kinds = _by_kind(verify(Spec((ObjectGroup("cross", "pink", position=wrong),)), image))
        assert kinds["position"] is False, wrong
        assert kinds["shape"] and kinds["colour"]


def test_swapped_attributes_fail_the_binding_check(setting):
    size, bg = setting
    image = render(_scene((0, "circle", "blue", 0.3, 0.3, 0.2), (1, "square", "red", 0.7, 0.7, 0.2),
                          background=bg), size)
    assert verify(Spec((ObjectGroup("circle", "blue"), ObjectGroup("square", "red"))), image).passed
    kinds = _by_kind(verify(Spec((ObjectGroup("circle", "red"), ObjectGroup("square", "blue"))), image))
    assert kinds["binding"] is False and kinds["object"] is False
    assert kinds["colour"] and kinds["shape"]  # each colour and shape is there, just on the wrong object


def test_blank_and_grey_images_fail_everything():
    spec = Spec((ObjectGroup("circle", "red"), ObjectGroup("square", "blue")), "above")
    for image in (Image.new("RGB", (64, 64), (240, 240, 240)), render(Scene((), DARK_VARIED), 256)):
        result = verify(spec, image)
        assert result.objects == [] and not result.passed
        assert all(not c.passed for c in result.checks if c.kind != "binding")
    # A greyscale render keeps the shapes but loses the colours.
    grey = render(_scene((0, "circle", "red", 0.5, 0.5, 0.25)), 64).convert("L").convert("RGB")
    assert not verify(Spec((ObjectGroup("circle", "red"),)), grey).passed


def test_verify_accepts_arrays_and_is_deterministic():
    image = render(_scene((0, "diamond", "brown", 0.5, 0.4, 0.22)), 64)
    spec = Spec((ObjectGroup("diamond", "brown"),))
    a, b = verify(spec, image), verify(spec, np.asarray(image))
    assert a.passed and a.to_dict() == b.to_dict()
    assert a.to_dict()["passed"] is True and a.to_dict()["score"] == 1.0
