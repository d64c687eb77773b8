"""tsproxy.runtime."""
