"""Configuration: the defaults of every key, the checks of impossible values, the config argument."""
