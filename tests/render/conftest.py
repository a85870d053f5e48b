"""Rasteriser tests run on one torch thread (see the fixture)."""

from __future__ import annotations




