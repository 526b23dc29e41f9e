"""dp layer."""
