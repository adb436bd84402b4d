"""cwn: the software of the Dutch Cyberweerbaarheidsnetwerk (target-and-victim notification)."""

__version__ = "0.1.0"
