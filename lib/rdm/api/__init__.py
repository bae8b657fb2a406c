"""The typed API: one function per command, taking typed inputs and writing its own outputs."""
