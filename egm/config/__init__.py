"""Configuration: every key's default, the checks of impossible values, the config argument."""
