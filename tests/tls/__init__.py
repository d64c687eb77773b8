"""The tls room of the test suite."""
