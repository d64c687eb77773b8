"""The config room of the test suite."""
