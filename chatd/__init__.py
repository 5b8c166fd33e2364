"""chatd: realtime chat rooms for e-commerce orders."""

__version__ = "0.1.0"
