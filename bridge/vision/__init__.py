"""Video I/O and analysis (OpenCV, PyAV) used by the reframe engine."""
