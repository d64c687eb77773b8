"""Traefik's API (``/api/...``), the dashboard and ``/ping`` on an internal entrypoint."""
