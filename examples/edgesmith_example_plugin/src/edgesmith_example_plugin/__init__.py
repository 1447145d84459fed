"""An example third-party edgesmith plugin package."""
