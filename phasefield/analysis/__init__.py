"""Metrics and plots computed from run files."""
