"""Studio Bridge tests (a package, so `tests.*` never resolves to another distribution's top-level `tests`)."""
