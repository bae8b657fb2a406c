"""rdm: adversarial robustness of medical-image classifiers (RDMAA reproduction)."""

__version__ = "0.1.0"
