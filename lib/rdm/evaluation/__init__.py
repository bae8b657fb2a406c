"""Evaluation: metrics, statistics, certification, audits and figures of sets."""
