"""The http room of the test suite."""
