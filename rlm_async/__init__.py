"""rlm-async."""
