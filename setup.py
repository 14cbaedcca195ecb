"""Packaging beyond what pyproject.toml can say: the shipped model travels inside the package.

The weights stay in the repository's top-level `weights/` folder beside their model card; the
build maps that folder to the package `colorize_cli.weights`, so a wheel, `pip install .` and an
editable install all find them with `importlib.resources`.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["colorize_cli", "colorize_cli.*"]) + ["colorize_cli.weights"],
    package_dir={"colorize_cli.weights": "weights"},
    package_data={"colorize_cli": ["py.typed"], "colorize_cli.report": ["templates/*.j2"], "colorize_cli.weights": ["*.safetensors", "*.sha256", "MODEL_CARD.md", "LICENSE-weights.md"]},
)
