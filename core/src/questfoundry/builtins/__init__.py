"""The core's built-in backends. They register through the same hooks as any external plugin."""
