"""Loopback fakes of the hosted image APIs, for provider tests and benchmarks."""
