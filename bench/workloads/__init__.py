"""One module per row of BENCHMARKS.md; each runs our path and its raw baseline in the same run."""
