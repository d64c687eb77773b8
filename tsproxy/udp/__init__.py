"""tsproxy.udp."""
