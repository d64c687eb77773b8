"""tsproxy.http."""
