"""The version of ltd-bert (setup.cfg reads it from here)."""

__version__ = "0.1.0"
