"""Build the optional compiled verifier; pyproject.toml holds everything else.

The extension is ``optional``: without a C compiler the package installs without it and
``clinlabel log verify`` checks every record in Python (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "napari_clinlabel.core._logscan",
            ["src/napari_clinlabel/core/_logscan.c"],
            extra_compile_args=["-O2", "-std=c11"],
            libraries=["dl"],
            optional=True,
        )
    ]
)
