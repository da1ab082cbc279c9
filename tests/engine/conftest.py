"""Shared fixtures for the media engine tests (no Django, no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from audio_engine import EngineConfig, MediaEngine

from .helpers import FIXTURE_DIR, RecordedEvents, read_wav


@pytest.fixture(scope="session")
def clean_speech() -> np.ndarray:
    return read_wav(FIXTURE_DIR / "speech_clean.wav")


@pytest.fixture(scope="session")
def noisy_speech() -> np.ndarray:
    return read_wav(FIXTURE_DIR / "speech_noisy.wav")


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()


@pytest.fixture
async def engine(events: RecordedEvents) -> AsyncIterator[MediaEngine]:
    media_engine = MediaEngine(EngineConfig(denoise_workers=1, receive_prefetch=1), events)
    yield media_engine
    await media_engine.shutdown()
