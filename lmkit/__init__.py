"""lmkit: the reference implementations that the course's chapters and exercises import."""

__version__ = "0.1.0"
