"""Benchmarks of the gateway: fake upstream, load generator, the comparison with LiteLLM's proxy."""
