"""Event stores. ``open_store(url)`` picks the implementation; SQLite is the default."""
