"""The api room of the test suite."""
