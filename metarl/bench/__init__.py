"""Speed benchmarks run by `metarl bench <name>`, outside the test suite."""
