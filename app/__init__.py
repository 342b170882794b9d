"""Llamadesk: a private, local desktop chat app for GGUF LLaMA-family models."""

__version__ = "0.1.0"
APP_NAME = "Llamadesk"
