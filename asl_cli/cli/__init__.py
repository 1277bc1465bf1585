"""The `asl` command: thin Typer commands over the library. Nothing here is imported by the library."""
