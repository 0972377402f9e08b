"""stemsweep: batch stem re-separation sweeps on the Youka API."""

__version__ = "0.1.0"
