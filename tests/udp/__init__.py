"""The udp room of the test suite."""
