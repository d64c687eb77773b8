"""The observe room of the test suite."""
