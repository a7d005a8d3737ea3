

DEFAULT_PORT = 50553  # the relay's UDP port, beside the daemon's 50552 (no imports: installers read it)
