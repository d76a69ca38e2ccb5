"""The assembly tier: LightningCLI, the Trainer it builds, plugins, config checks, resume and run folders, and the
training command. It puts the runtime (`train/`) and the callbacks together; study and tools stand on it."""

__all__: list[str] = []
