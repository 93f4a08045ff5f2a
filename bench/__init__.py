"""ResolutionFlow benchmarks: each module prints its figures and, last, one JSON line (`make bench`)."""
