"""debias: find what a face dataset under-represents and turn it into resampling weights."""

__version__ = "0.1.0"
