"""Transports: thin translators from gRPC and OSC onto bridge.core.service."""
