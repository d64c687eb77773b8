"""The runtime room of the test suite."""
