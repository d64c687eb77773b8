"""The providers room of the test suite."""
