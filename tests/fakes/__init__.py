"""Loopback fakes of external services that speak their real wire formats (tests and benchmarks only)."""
