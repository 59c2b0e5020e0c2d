"""The command line: commands registered explicitly, imported lazily."""
