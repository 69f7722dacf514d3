"""Installation of recbole-slmrec; the pinned dependency set lives in requirements.txt."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name: str) -> list[str]:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        lines = (line.split("#")[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name="recbole-slmrec",
    version="0.1.0",
    description="SLMRec, self-supervised multimedia recommendation, as a RecBole plugin",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(
        include=["recbole_slmrec", "recbole_slmrec.*", "atomic_data_tools", "atomic_data_tools.*"]
    ),
    package_data={"recbole_slmrec": ["properties/*.yaml", "properties/*/*.yaml"]},
    include_package_data=True,
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_slmrec.cli:main",
            "atomic_data_tools=atomic_data_tools.cli:main",
            "slmrec_benchmark=recbole_slmrec.benchmark:main",
        ]
    },
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
