"""Drive py-rattler-build offline: source mirror, toolchain package, cache."""
