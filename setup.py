"""Only what pyproject.toml cannot say: web/ ships in the wheel as the package ``chatd.web``.

web/ stays at the top of the checkout (the widget's tsc and node tests work on it there), and
an installed chatd serves the widget and the demo from the package (chatd.edge.static). The
rest of the metadata is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["chatd", "chatd.*"]), "chatd.web"],
    package_dir={"chatd.web": "web"},
)
