"""`python -m benchmarks` and the measurement scripts, run from the repository; the library is imagen_demo.bench."""
