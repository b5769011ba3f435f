"""packyard: a private Python package repository."""

__version__ = "0.1.0"
