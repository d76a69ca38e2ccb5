"""The tools layer: scale, benchmark, cam, export; each a command's `main(argv) -> int`."""

__all__: list[str] = []
