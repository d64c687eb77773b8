"""tsproxy.rules."""
