"""shapes-CLIP: a small CLIP trained on the shapes world, the benchmark's and the demo's CLIP score offline.

No CLIP weights of any kind ship in the package registries these machines reach, so the project trains its own
with open_clip's model classes and loss on the shapes world's train split (never the held-out combinations):

    python -m imagen_demo.bench.shapes_clip train --config recipes/shapes-clip.toml [--resume] [--max-minutes M]
    python -m imagen_demo.bench.shapes_clip quality [--suite shapes-test] [--run BENCHMARK_DIR]

It reads only the shapes grammar's words, so it scores shapes-world prompts; reports call it "shapes-CLIP". The
model is the metric's (`bench.metrics.shapes_clip`); this package trains it (`train`) and measures it (`quality`).
"""
