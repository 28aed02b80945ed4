"""sensor/decode package."""
