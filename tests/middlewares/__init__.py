"""The middlewares room of the test suite."""
