"""The twin's REST API on port 8006 (what pveproxy serves on PVE)."""
