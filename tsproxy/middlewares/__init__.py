"""Traefik's HTTP and TCP middlewares: pure steps over a request head (see `base`)."""
