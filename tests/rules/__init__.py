"""The rules room of the test suite."""
