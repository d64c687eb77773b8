"""tsproxy.tcp."""
