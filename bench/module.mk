# The benchmark.
