"""The balance room of the test suite."""
