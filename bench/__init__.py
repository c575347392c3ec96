"""The benchmark suite of BENCHMARKS.md: every hot path next to its raw baseline, in one run.

`make bench ARGS="--scale small|full --only 1,2"` (or `python -m bench`) creates scratch tenants
with generated data (deterministic seed), runs each workload and its baseline on the same database
and data, prints one table and writes it, with the machine's description and the growth chart, to
bench/results/. The product has no benchmark code: the bare views of row 5 live in bench/ only.
"""
