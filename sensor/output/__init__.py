"""sensor/output package."""
