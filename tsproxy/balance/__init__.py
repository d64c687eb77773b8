"""tsproxy.balance."""
