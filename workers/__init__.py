"""One worker entry point per task queue: ``revsync worker QUEUE``."""
