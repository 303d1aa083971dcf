"""Studies: scripts that train and evaluate several runs and tabulate them (the library does not import them)."""
