"""`make bench` scenarios; see benchmarks/__main__.py."""
