"""Mechanistic measures. Modules here import numpy only, except those named ``*_torch``."""
