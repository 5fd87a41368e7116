"""Package layout the pyproject table cannot say: the top-level abis/ folder ships inside the wheel
as the data package ``keeper.abis`` (one subfolder per protocol, found with the rest), and the
executor's compiled artifact (and its source) ship in ``keeper.executor``."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["keeper", "keeper.*"]) + ["keeper.abis"],
    package_dir={"keeper.abis": "abis"},
    package_data={"keeper.abis": ["*/*.json"], "keeper.executor": ["*.json", "*.sol"]},
    include_package_data=False,
)
