"""benchmarks.sampling_speed on the tiny cascade, one step per stage: every row, and speed-ups against imagen-pytorch."""

from __future__ import annotations

import dataclasses

from benchmarks import imagen_pytorch_baseline, sampling_speed
from tiny import build_tiny_pipeline


def test_the_speed_table_has_every_row_and_positive_speedups(own_encoder):
    assert imagen_pytorch_baseline.unet_class() is not None, "imagen-pytorch is missing: bash scripts/install"

    def load():
        pipe = build_tiny_pipeline(own_encoder)
        # a guided base, an unguided SR
        pipe.defaults = dataclasses.replace(pipe.defaults, num_inference_steps=1, guidance_scale=[3.0, 1.0])
        return pipe

    result = sampling_speed.measure(load, rounds=1, train_batch=2)
    assert [(s["stage"], s["batch"]) for s in result["stages"]] == [(1, 2), (2, 1)]
    table = sampling_speed.markdown(result)
    for row in ("| eager |", "| channels_last |", f"| {sampling_speed.BASELINE} |"):
        assert table.count(row) == (3 if row != f"| {sampling_speed.BASELINE} |" else 1), row
    speedups = sampling_speed.speedups(result)
    assert list(speedups) == ["eager", "channels_last"]
    for row in speedups.values():
        assert list(row) == ["stage 1 forward", "stage 2 forward", "U-Nets per image", "training"]
        assert all(ratio > 0 for ratio in row.values())
