"""Host adapters: thin clients of the Studio Bridge daemon for the programs people work in.

Every module here talks to the daemon through ``bridge.client`` (or the CLI),
never through ``bridge.core`` or ``bridge.engines``.
"""
