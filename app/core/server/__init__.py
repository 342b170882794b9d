"""The local OpenAI-compatible API server (no Qt): settings, request parsing, the guard, aiohttp app."""
