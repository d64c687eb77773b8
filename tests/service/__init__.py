"""The service room of the test suite."""
