"""Studio Bridge: a local daemon serving audio and video AI models to hosts."""

__version__ = "0.1.0"
