"""Recordings in real Chromium: times in the viewer's own zone, renames, deletes and merges reaching a friend's
open page, the Ogg/Opus download, waveforms that seek, and "Load more"."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import FAKE_MICROPHONE, QuietcastServer, _seconds_of_audio
from tests.live_server import prepare_database, running_daphne, seed_code, server_environment

pytestmark = pytest.mark.browser

PAGE_SIZE = 5
# alice's recordings (title, when saved in UTC) and bob's, each with a copy of the fake microphone's audio.
ALICES = (
    ("Play me", "2026-11-22T12:00:00+00:00"),
    ("Tokyo time", "2026-11-21T22:53:00+00:00"),
    ("Fragment two", "2026-11-20T20:05:00+00:00"),  # began about 5 minutes after Fragment one ended
    ("Fragment one", "2026-11-20T20:00:00+00:00"),
    ("Old note", "2026-11-19T10:00:00+00:00"),
)
BOBS = tuple((f"Bob's {n}", f"2026-11-{10 + n:02}T18:00:00+00:00") for n in range(PAGE_SIZE + 2))
SEED = """
from datetime import datetime
import shutil
from streams.models import StreamRecording
for username, recordings in (("alice", {alices!r}), ("bob", {bobs!r})):
    owner = User.objects.get(username=username)
    for title, saved_at in recordings:
        path = f"seed/{{username}}-{{title.replace(' ', '-').replace(chr(39), '')}}.wav"
        shutil.copy({microphone!r}, {recordings_dir!r} + "/" + path)
        recording = StreamRecording.objects.create(owner=owner, title=title, audio_path=path,
            duration={duration!r}, denoise_enabled=True)
        StreamRecording.objects.filter(pk=recording.pk).update(created_at=datetime.fromisoformat(saved_at))
"""
# What Chromium writes for one instant with the en-GB locale: the weekday, day, month, year and 24-hour time.
DATE = re.compile(r"^[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d$")


@pytest.fixture(scope="module")
def quietcast_server(tmp_path_factory) -> Iterator[QuietcastServer]:
    workdir = tmp_path_factory.mktemp("recordings-server")
    recordings_dir = workdir / "recordings"
    (recordings_dir / "seed").mkdir(parents=True)
    env = server_environment(workdir, RECORDINGS_PAGE_SIZE=str(PAGE_SIZE))
    cast = seed_code(("alice", "bob", "carol"), friends=(("alice", "bob"),))
    seed = SEED.format(
        alices=ALICES,
        bobs=BOBS,
        microphone=str(FAKE_MICROPHONE),
        recordings_dir=str(recordings_dir),
        duration=_seconds_of_audio(FAKE_MICROPHONE),
    )
    prepare_database(env, cast + seed)
    with running_daphne(env, workdir / "daphne.log") as server:
        yield QuietcastServer(url=server.url, recordings_dir=recordings_dir)


def item(page: Page, title: str):
    return page.locator(".recording", has=page.locator("[data-field=title]", has_text=re.compile(f"^{title}$")))


def when(page: Page, title: str):
    return item(page, title).locator("time")


def test_times_are_in_each_viewers_zone_in_one_format_on_first_render_after_a_rename_and_on_arrival(log_in):
    alice = log_in("alice", timezone_id="UTC", locale="en-US")
    in_tokyo = log_in("bob", timezone_id="Asia/Tokyo", locale="en-GB")
    in_los_angeles = log_in("bob", timezone_id="America/Los_Angeles", locale="en-GB")
    for page in (alice, in_tokyo, in_los_angeles):
        page.goto("/user/alice/")
    # One instant, 2026-11-21 22:53 UTC, as each viewer's clock shows it.
    expect(when(in_tokyo, "Tokyo time")).to_have_text("Sun, 22 Nov 2026, 07:53")
    expect(when(in_los_angeles, "Tokyo time")).to_have_text("Sat, 21 Nov 2026, 14:53")
    for page in (in_tokyo, in_los_angeles):
        for time in page.locator(".recording time").all():
            expect(time).to_have_text(DATE)

    # A rename reaches the friend's open pages; the time keeps its format.
    renamed = item(alice, "Tokyo time")
    renamed.get_by_role("button", name="Rename").click()
    renamed.get_by_label("Title").fill("Late call")
    renamed.get_by_role("button", name="Save").click()
    expect(when(in_tokyo, "Late call")).to_have_text("Sun, 22 Nov 2026, 07:53")
    expect(when(in_los_angeles, "Late call")).to_have_text("Sat, 21 Nov 2026, 14:53")
    expect(when(alice, "Late call")).to_have_text("Sat, Nov 21, 2026, 10:53 PM")  # her own locale and zone
    expect(item(in_tokyo, "Tokyo time")).to_have_count(0)

    # The owner merges two fragments of one evening: the friend's pages get one recording, where the two were,
    # its time written the same way (2026-11-20 20:05 UTC, when the later part ended).
    alice.once("dialog", lambda dialog: dialog.accept())
    item(alice, "Fragment two").get_by_role("button", name="Merge").click()
    expect(item(alice, "Fragment two")).to_have_count(0)
    for page, shown in ((in_tokyo, "Sat, 21 Nov 2026, 05:05"), (in_los_angeles, "Fri, 20 Nov 2026, 12:05")):
        expect(item(page, "Fragment two")).to_have_count(0)
        expect(when(page, "Fragment one")).to_have_text(shown)
        titles = page.locator(".recording [data-field=title]")
        expect(titles).to_have_text(["Play me", "Late call", "Fragment one", "Old note"])
    merged = item(in_tokyo, "Fragment one").locator("audio")
    in_tokyo.wait_for_function(
        "audio => audio.duration > 2 * 7 - 0.1", arg=merged.element_handle()
    )  # both parts' audio, one after the other

    # A reload writes the same.
    in_tokyo.reload()
    expect(when(in_tokyo, "Late call")).to_have_text("Sun, 22 Nov 2026, 07:53")
    expect(when(in_tokyo, "Fragment one")).to_have_text("Sat, 21 Nov 2026, 05:05")


def test_a_delete_reaches_a_friends_open_page(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    bob.goto("/user/alice/")
    alice.goto("/user/alice/")
    expect(item(bob, "Old note")).to_have_count(1)
    alice.once("dialog", lambda dialog: dialog.accept())
    item(alice, "Old note").get_by_role("button", name="Delete").click()
    expect(item(alice, "Old note")).to_have_count(0)
    expect(item(bob, "Old note")).to_have_count(0, timeout=2000)
    assert bob.locator(".recording audio").count() == bob.locator(".recording").count() > 0


def test_the_ogg_download_plays_and_is_much_smaller_than_the_wav(log_in):
    bob = log_in("bob")
    bob.goto("/user/alice/")
    played = item(bob, "Play me")
    wav_link = played.get_by_role("link", name="Download WAV")
    ogg_link = played.get_by_role("link", name="Download Ogg")
    expect(ogg_link).to_have_attribute("href", re.compile(r"/audio/\?format=ogg&download=1$"))
    wav = bob.request.get(wav_link.get_attribute("href"))
    ogg = bob.request.get(ogg_link.get_attribute("href"))
    assert (wav.status, ogg.status) == (200, 200)
    assert ogg.headers["content-type"] == "audio/ogg"
    assert len(ogg.body()) * 8 < len(wav.body())

    # Chromium plays the compressed copy: an <audio> element reads its whole duration.
    source = ogg_link.get_attribute("href").replace("&download=1", "")
    duration = bob.evaluate(
        """source => new Promise((resolve, reject) => {
            const audio = new Audio(source);
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
            audio.addEventListener("error", () => reject(new Error("cannot play " + source)));
        })""",
        source,
    )
    assert abs(duration - _seconds_of_audio(FAKE_MICROPHONE)) < 0.1


def test_the_waveform_is_drawn_and_a_click_seeks_there(log_in, screenshots_dir):
    alice = log_in("alice")
    alice.goto("/user/alice/")
    played = item(alice, "Play me")
    waveform = played.locator("canvas.waveform")
    expect(waveform).to_be_visible()
    # Bars are drawn: some pixels of the canvas are painted, and louder slices are taller than quiet ones.
    painted = waveform.evaluate(
        """canvas => {
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) count += 1;
            return count / (canvas.width * canvas.height);
        }"""
    )
    assert 0.05 < painted < 0.95

    box = waveform.bounding_box()
    waveform.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    player = played.locator("audio")
    alice.wait_for_function(
        "audio => Math.abs(audio.currentTime / audio.duration - 0.75) < 0.02 && !audio.seeking",
        arg=player.element_handle(),
    )
    alice.locator("#recordings-section").screenshot(path=screenshots_dir / "recordings.png")


def test_load_more_brings_older_recordings(log_in):
    alice = log_in("alice")
    alice.goto("/user/bob/")
    titles = alice.locator(".recording [data-field=title]")
    newest_first = [title for title, _ in reversed(BOBS)]
    expect(titles).to_have_text(newest_first[:PAGE_SIZE])
    load_more = alice.get_by_role("button", name="Load more")
    load_more.click()
    expect(titles).to_have_text(newest_first)
    expect(load_more).to_be_hidden()
    for time in alice.locator(".recording time").all():
        expect(time).to_have_text(re.compile(r"\d{4}"))
    # The older ones have waveforms too (computed once, as they were first listed).
    expect(item(alice, newest_first[-1]).locator("canvas.waveform")).to_be_visible()
