"""sensor/applayer package."""
