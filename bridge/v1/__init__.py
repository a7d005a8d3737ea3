"""Generated gRPC stubs for the bridge.v1 wire contract (see protos/)."""
