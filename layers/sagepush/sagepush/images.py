"""Framework training image URIs, resolved offline from data generated out of the SageMaker Python SDK."""

from __future__ import annotations

from sagepush.errors import InputError


class ImageError(InputError):
    """No image exists for the framework, version, Python version, instance type or region asked for."""


def training_image_uri(
    framework: str,
    version: str,
    *,
    region: str,
    instance_type: str,
    py_version: str | None = None,
    distribution: object | None = None,
) -> str:
    """Return the training image URI the SageMaker Python SDK v2 would pick for these inputs."""
    raise NotImplementedError
