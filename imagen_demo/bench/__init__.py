"""The DrawBench-style benchmark library: suites, resumable runner, metrics, scoring, reports.

It lives inside the package so the demo's Benchmark tab works wherever imagen_demo is installed; the
repository's top-level ``benchmarks/`` holds only its command line and the measurement scripts.
"""
