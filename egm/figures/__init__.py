"""Figures: image grids, scatter plots of 2-D points and line plots, written as PNG files."""
