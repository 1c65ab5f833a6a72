"""Shared fixtures: a small phantom cohort as records (fast, 64x64 slices)."""

from __future__ import annotations

import pytest

from hemato.data.phantom import PhantomSource


class ListSource:
    """A DataSource over records already in memory."""

    def __init__(self, records):
        self.records = records

    def load(self):
        return list(self.records)


@pytest.fixture(scope="session")
def small_records():
    return PhantomSource(n_patients=12, image_size=64, seed=7, min_slices=20, max_slices=22).load()


@pytest.fixture()
def small_source(small_records):
    return ListSource(small_records)
