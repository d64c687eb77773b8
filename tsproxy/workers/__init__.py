"""Running the proxy as N worker processes under one supervisor (``--workers N``)."""
