"""tsproxy.config."""
