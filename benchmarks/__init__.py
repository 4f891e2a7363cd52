"""Benchmarks: speed of the U-Net presets and (later) the DrawBench-style evaluation."""
