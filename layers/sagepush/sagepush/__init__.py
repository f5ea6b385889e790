"""sagepush core: from an uploaded training project to a SageMaker training job and its alerts."""

__version__ = "0.1.0"
