"""The workers room of the test suite."""
