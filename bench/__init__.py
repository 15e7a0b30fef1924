"""`make bench`: synth time and memory against the plain import, growth with the number of
services, and the test suite's time, written to BENCHMARKS.md. Scripts, not part of the library."""
