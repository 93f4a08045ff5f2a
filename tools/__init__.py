"""Project tools run from the repository root (`python -m tools.<name>`); they may import every service."""
