"""Drawing utilities shared by the picture callbacks and `effnet cam`: Grad-CAM and captioned image grids.

Imports nothing above errors, so callbacks and tools both use it without importing each other."""

__all__: list[str] = []
