"""ftforge: free-threaded CPython and its compiled ecosystem as conda packages."""

__version__ = "0.1.0"
