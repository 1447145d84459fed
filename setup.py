"""Maps the repository's top-level folders onto the ``edgesmith`` namespace.

core/ -> edgesmith.core, plugins/ -> edgesmith.plugins, and so on. ``edgesmith`` itself
is a namespace package (no __init__.py), so the mapping works for both ``pip install .``
and ``pip install -e .``.
"""

from setuptools import find_packages, setup

ROOTS = ("core", "plugins", "search", "kernels", "conf")

packages, package_dir = [], {}
for root in ROOTS:
    package_dir[f"edgesmith.{root}"] = root
    packages.append(f"edgesmith.{root}")
    for sub in find_packages(where=root):
        packages.append(f"edgesmith.{root}.{sub}")

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "edgesmith.conf": ["*.yaml", "**/*.yaml"],
        "": ["*.jinja", "*.json", "*.yaml"],
    },
    include_package_data=True,
)
