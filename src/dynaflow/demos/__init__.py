"""Where demonstrations come from. Every source writes the NPZ schema of :mod:`dynaflow.data`."""
