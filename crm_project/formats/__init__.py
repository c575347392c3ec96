"""Date and number formats of the admin (FORMAT_MODULE_PATH)."""
