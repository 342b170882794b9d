"""The application core: pure Python, no Qt (tests/core/test_core_is_qt_free.py enforces it)."""
