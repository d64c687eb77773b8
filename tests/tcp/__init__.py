"""The tcp room of the test suite."""
