"""Complexity classifiers: a request in, a score in [0, 1] out. Pure, except the one loader below."""

from gateway.classify.loader import load_classifier, load_default_classifier, load_router_model

__all__ = ["load_classifier", "load_default_classifier", "load_router_model"]
