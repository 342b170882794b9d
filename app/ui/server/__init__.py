"""The API server's panel (View ▸ Server…): start/stop, who can connect, the key, the request log."""
