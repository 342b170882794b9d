"""Widgets and dialogs. They observe models and emit intents; they never call llama.cpp or SQLite."""
