"""Writing results: one encoder per format, every write atomic."""
