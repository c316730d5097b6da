"""Robot descriptions: the project's own MJCF models and their constants (one package per robot)."""
