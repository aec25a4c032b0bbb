"""affectflow: social-media archives to affect features and models, one shard at a time."""

__version__ = "0.1.0"
