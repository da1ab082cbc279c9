"""How busy a denoise worker is, when a stream switches between denoised and pass-through, and how often a
worker may be restarted. Pure bookkeeping (no processes, no I/O): time is always passed in or read from an
injected clock.

Load: each worker measures every tick (audio_engine.worker_protocol.TickReport); the costs of the model and of
the codec are smoothed from those reports (starting from the worker's start-up calibration), and a worker's load
is what its current streams cost per 20 ms of audio, as a share of 20 ms. The model's cost per round is affine
in the number of streams it advances: a fixed part per call and a part per stream. For one processor per stream
the fixed part is ~0; for the batched DeepFilterNet3 it is most of a small batch (`bench.denoise_model`: one
stream alone costs ~4x what each of 16 in one call does), so a per-stream average would misjudge both how many
more streams fit and how many must go when a worker falls behind.
Wall time, not CPU time: a worker that waits for a core because the machine is busy is just as late.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from audio_engine.framing import FRAME_SAMPLES, SAMPLE_RATE
from audio_engine.worker_protocol import TickReport

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
# Weight of each new tick in the smoothed costs (50 ticks per second: ~0.4 s to follow a change).
SMOOTHING = 0.05
# The share of a worker's time planned for work: the rest absorbs jitter, other processes and the event loop.
TARGET_LOAD = 0.7
# A worker whose frames wait longer than this (smoothed; about 20 ms when it keeps up) while its measured costs
# put it beyond OVERLOAD is falling behind: enough streams are switched to pass-through to bring its load back
# to TARGET_LOAD. A wait with costs that fit is a backlog being caught up (a scheduling hiccup of a busy
# machine), unless it passes UNEXPLAINED_WAIT_FACTOR times this: then one stream is shed at a time.
MAX_WAIT_S = 0.15
OVERLOAD = 0.9
UNEXPLAINED_WAIT_FACTOR = 4
# Weight of each round of a tick in the smoothed wait. Per round, not per report: a worker that is behind runs
# many rounds per tick and reports rarely, and a weight per report would lag a growing backlog by a second.
WAIT_SMOOTHING = 0.3
# A worker counts as falling behind only once its frames have waited too long for this long without a break. A
# worker that really cannot keep up waits longer and longer; one that was merely stopped for a moment (a busy or
# briefly frozen machine) catches up its backlog within a fraction of a second, and shedding a stream for that
# would pass it through for a whole hysteresis period for nothing.
BEHIND_FOR_S = 0.5
# Frames that still wait too long, but whose wait has fallen below this share of what it was BEHIND_FOR_S ago, are
# a backlog being caught up: after a shed the worker first works off the frames that queued while it was behind,
# and shedding more then (once the wait passes UNEXPLAINED_WAIT_FACTOR times the limit) would pass through a stream
# that fits.
DRAINING_SHARE = 0.9
# A stream switches at most once in this long (except for the first switch of a newly opened stream).
HYSTERESIS_S = 5.0
# After a decision the worker's costs are given this long to show its effect before the next one.
SETTLE_S = 1.0


class WorkerLoad:
    """Smoothed costs of one worker, per 20 ms frame: the model's `model_fixed_s` per round plus `model_s` per
    denoised stream, the codec's `codec_s` per stream; and how long its frames wait to be processed."""

    def __init__(self, model_s: float, codec_s: float, model_fixed_s: float = 0.0) -> None:
        self.model_s = model_s
        self.model_fixed_s = model_fixed_s
        self.codec_s = codec_s
        self.wait_s = 0.0

    def model_cost(self, denoised: float) -> float:
        """Seconds of model time per 20 ms frame for `denoised` streams advanced together."""
        return self.model_fixed_s + denoised * self.model_s if denoised else 0.0

    def add(self, report: TickReport) -> None:
        if report.denoised_frames and report.rounds:
            # Both parts scale together: what changes while running is how fast this machine is now (other
            # processes, clock speed), not the shape measured at start.
            expected = self.model_cost(report.denoised_frames / report.rounds) * report.rounds
            if expected > 0:
                factor = 1.0 + SMOOTHING * (report.model_s / expected - 1.0)
                self.model_s *= factor
                self.model_fixed_s *= factor
        if report.frames:
            codec_s = max(0.0, report.busy_s - report.model_s) / report.frames
            self.codec_s += SMOOTHING * (codec_s - self.codec_s)
            weight = 1.0 - (1.0 - WAIT_SMOOTHING) ** max(1, report.rounds)
            self.wait_s += weight * (report.max_wait_s - self.wait_s)

    def load(self, streams: int, denoised: int) -> float:
        """The share of real time the worker needs for `streams` streams, `denoised` of them through the model."""
        return (streams * self.codec_s + self.model_cost(denoised)) / FRAME_S

    def headroom(self, streams: int, denoised: int) -> int:
        """How many more denoised streams fit under TARGET_LOAD; an idle worker takes one if it can keep up with
        it at all (a busy machine would otherwise refuse every denoised stream)."""
        per_stream_s = self.model_s + self.codec_s
        if per_stream_s <= 0:
            return 1_000_000
        spare_s = (TARGET_LOAD - self.load(streams, denoised)) * FRAME_S
        if not denoised:
            spare_s -= self.model_fixed_s  # the first denoised stream brings the model's fixed cost
        fits = math.floor(spare_s / per_stream_s + 1e-9)  # exact fits count despite float rounding
        if streams == 0 and self.load(1, 1) <= OVERLOAD:
            fits = max(fits, 1)
        return max(0, fits)


@dataclass
class StreamMode:
    """What the policy knows of one stream on a worker. `order` grows with each opened stream; `wanted`: the
    session asked for denoising and the worker could open a model for it."""

    stream_id: int
    order: int
    wanted: bool = True
    denoised: bool = True
    switched_at: float | None = None

    def settled(self, now: float, hysteresis_s: float) -> bool:
        return self.switched_at is None or now - self.switched_at >= hysteresis_s


class ModePolicy:
    """Decides, for one worker, which streams are denoised: when it is falling behind (see MAX_WAIT_S), enough of
    the newest streams (at least one, at most half) go to pass-through to bring its load back to TARGET_LOAD;
    when a stream waiting in pass-through would fit under TARGET_LOAD again, the longest-running one is denoised
    again. Each stream switches at most once per `hysteresis_s`, and decisions are `settle_s` apart. Shedding
    needs frames that really wait, not just a high estimate: on a shared machine the estimate is noisy, while
    frames that wait longer and longer are what listeners would hear; and they must have waited for `behind_for_s`
    on end without the wait falling (see BEHIND_FOR_S and DRAINING_SHARE), which a backlog being caught up does
    not."""

    def __init__(self, hysteresis_s: float = HYSTERESIS_S, settle_s: float = SETTLE_S,
                 max_wait_s: float = MAX_WAIT_S, behind_for_s: float = BEHIND_FOR_S) -> None:
        self.hysteresis_s = hysteresis_s
        self.settle_s = settle_s
        self.max_wait_s = max_wait_s
        self.behind_for_s = behind_for_s
        self._next_decision_at = -math.inf
        # The wait at each report of the current stretch of waiting too long, from the last one at least
        # behind_for_s old: how long it has lasted and whether the wait is falling.
        self._waits: deque[tuple[float, float]] = deque()

    def decide(self, load: WorkerLoad, streams: list[StreamMode], now: float) -> list[StreamMode]:
        """Apply the decisions to `streams` and return the streams that switched. Called on every tick report:
        how long the worker has been waiting too long is followed between decisions too."""
        denoised = [s for s in streams if s.denoised]
        current = load.load(len(streams), len(denoised))
        waiting_too_long = load.wait_s > self.max_wait_s and (
            current > OVERLOAD or load.wait_s > UNEXPLAINED_WAIT_FACTOR * self.max_wait_s)
        if not waiting_too_long:
            self._waits.clear()
        else:
            self._waits.append((now, load.wait_s))
            while len(self._waits) > 1 and self._waits[1][0] <= now - self.behind_for_s:
                self._waits.popleft()
        if now < self._next_decision_at:
            return []
        switched: list[StreamMode] = []
        behind = bool(self._waits) and self._waits[0][0] <= now - self.behind_for_s and (
            load.wait_s >= DRAINING_SHARE * self._waits[0][1])
        if behind:
            excess = max(1, math.ceil((current - TARGET_LOAD) * FRAME_S / load.model_s)) if load.model_s > 0 else 1
            # At most half (rounded up) at once: the wait lags behind and the costs are estimates, and a stream
            # shed for nothing is passed through for a whole hysteresis period. If half was not enough, the next
            # decision (settle_s later) sheds more.
            excess = min(excess, max(1, (len(denoised) + 1) // 2))
            newest_first = sorted((s for s in denoised if s.settled(now, self.hysteresis_s)), key=lambda s: -s.order)
            switched = newest_first[:excess]
        elif not waiting_too_long:  # no stream comes back while frames wait, however briefly
            waiting = sorted((s for s in streams if s.wanted and not s.denoised and s.settled(now, self.hysteresis_s)),
                             key=lambda s: s.order)
            if waiting and load.load(len(streams), len(denoised) + 1) <= TARGET_LOAD:
                switched = waiting[:1]
        for stream in switched:
            stream.denoised = not stream.denoised
            stream.switched_at = now
        if switched:
            self._next_decision_at = now + self.settle_s
        return switched


class RestartBudget:
    """At most `restarts` restarts within any `window_s`: a worker that keeps failing is given up."""

    def __init__(self, restarts: int, window_s: float, clock: Callable[[], float]) -> None:
        self.restarts = restarts
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Whether one more restart is allowed now (and if so, count it)."""
        now = self._clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.restarts:
            return False
        self._times.append(now)
        return True
