"""Build recipes for the Docker sandbox image, shipped as package data.

Installed as ``toolcrib.images``; `toolcrib.sandbox.image` reads the
``Dockerfile`` and ``build-base.sh`` from here. No Python code lives here.
"""

__all__: list[str] = []
