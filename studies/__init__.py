"""Studies: scripts that train and evaluate several runs and tabulate them (the library never
imports them)."""
