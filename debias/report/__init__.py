"""Reading a run directory into group metrics and reports. Needs no training code."""
