"""pvelab grade: score a class\x27s PVE clusters with a rubric (read-only), and write the reports."""
