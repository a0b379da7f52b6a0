"""The package version (one place: the package root, the study record and the bundle read it)."""

__version__ = "0.1.0"
