"""asl: train isolated sign language recognisers from MediaPipe Holistic landmarks."""

__version__ = "0.1.0"
