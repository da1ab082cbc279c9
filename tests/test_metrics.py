"""The per-process Prometheus endpoint: who may read it, that it parses, and that its figures follow what the
server really does (offers through the API; a live stream, a listener and denoise ticks through a real server)."""

import asyncio
from pathlib import Path

import aiohttp
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file
from quietcast.metrics import may_read_metrics
from quietcast_cli.api import ApiError, QuietcastApi
from streams import media, services
from tests.live_server import PASSWORD, prepare_database, running_daphne, seed_code, server_environment

TOKEN = "a-long-random-metrics-token"
REMOTE = "203.0.113.7"


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, parsed by prometheus_client: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


# --- the access rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "forwarded_for", "allowed"),
    [
        ("127.0.0.1", "", True),
        ("::1", "", True),
        ("127.8.9.10", "", True),
        (REMOTE, "", False),
        ("192.168.1.20", "", False),  # the LAN is not the machine itself
        ("127.0.0.1", REMOTE, False),  # a reverse proxy on the machine passing on a visitor
        ("", "", False),
    ],
)
def test_without_a_token_only_loopback_clients_not_behind_a_proxy_may_read(address, forwarded_for, allowed):
    assert may_read_metrics(address, "", forwarded_for, token="") is allowed


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        ("Bearer not-the-token", False),
        (f"Bearer {TOKEN}x", False),
        (f"Token {TOKEN}", False),  # an API token's scheme is not the metrics token
        ("", False),
    ],
)
@pytest.mark.parametrize("address", ["127.0.0.1", REMOTE])
def test_with_a_token_set_every_client_must_present_it(address, authorization, allowed):
    assert may_read_metrics(address, authorization, "", token=TOKEN) is allowed


@pytest.mark.django_db
def test_a_refused_client_gets_the_plain_not_found_of_any_missing_page(settings):
    settings.METRICS_TOKEN = TOKEN
    for method in ("get", "post"):
        refused = getattr(Client(REMOTE_ADDR=REMOTE), method)("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
        missing = getattr(Client(REMOTE_ADDR=REMOTE), method)("/no-such-page")
        assert refused.status_code == missing.status_code == 404
        assert refused.content == missing.content
    assert Client(REMOTE_ADDR=REMOTE).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    allowed_post = Client(REMOTE_ADDR=REMOTE).post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed_post.status_code == 405


@pytest.mark.django_db
def test_a_local_scraper_reads_plain_http_while_the_site_redirects_to_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/login/").status_code == 301
    assert Client().get("/metrics").status_code == 200


# --- the exposition -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_exposition_parses_and_counts_offers_by_kind_and_failure_reason(alice, bob, api_client, monkeypatch):
    def scrape() -> dict:
        response = Client().get("/metrics")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
        return samples(response.content.decode())

    def count(figures: dict, name: str, **labels: str) -> float:
        return figures.get((name, tuple(sorted(labels.items()))), 0.0)

    before = scrape()
    assert count(before, "quietcast_live_streams") == 0  # no stream in this process
    monkeypatch.setattr(media, "publish", lambda *args, **kwargs: "v=0 answer")
    services.start_stream(alice, denoise=False)
    offer = {"sdp": "v=0", "type": "offer"}
    assert api_client(alice).post("/api/stream/offer/", offer, format="json").status_code == 200
    assert api_client(bob).post("/api/stream/offer/", offer, format="json").status_code == 409  # bob is not live
    services.stop_stream(alice)
    assert api_client(bob).post("/api/stream/listener/alice/offer/", offer, format="json").status_code == 404
    after = scrape()

    def moved(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    assert moved("quietcast_offers_total", kind="publish") == 2
    assert moved("quietcast_offer_failures_total", kind="publish", reason="not_live") == 1
    assert moved("quietcast_offers_total", kind="listen") == 1
    assert moved("quietcast_offer_failures_total", kind="listen", reason="not_live") == 1
    assert moved("quietcast_offer_seconds_count", kind="publish") == 2
    assert count(after, "quietcast_offer_seconds_bucket", kind="listen", le="+Inf") >= 1
    assert count(after, "process_resident_memory_bytes") > 0


# --- a real server ---------------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.slow
async def test_a_live_stream_its_listener_and_the_denoise_ticks_show_on_a_real_server(tmp_path):
    env = server_environment(tmp_path, DENOISE_WORKERS="1", DENOISE_BACKEND="passthrough", METRICS_TOKEN=TOKEN)
    prepare_database(env, seed_code(("alice", "bob"), friends=(("alice", "bob"),)))
    with running_daphne(env, tmp_path / "daphne.log") as server:
        async with aiohttp.ClientSession() as http:

            async def scrape() -> dict:
                async with http.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
                    assert reply.status == 200
                    return samples(await reply.text())

            async def refused() -> int:
                async with http.get(f"{server.url}/metrics") as reply:
                    return reply.status

            alice, bob = QuietcastApi(server.url, http), QuietcastApi(server.url, http)
            await alice.login("alice", PASSWORD)
            await bob.login("bob", PASSWORD)
            assert await refused() == 404  # a token is set: even this machine must present it
            await alice.start_stream(True)
            track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav", seconds=4))
            publisher = await connect_publisher(track, alice.send_publisher_offer, [])
            listener, _listening = await connect_listener(
                lambda offer: bob.send_listener_offer("alice", offer), lambda _samples, _at: None, []
            )
            live = await _eventually(scrape, lambda f: f[("quietcast_listeners", ())] == 1)
            assert live[("quietcast_live_streams", ())] == 1
            assert live[("quietcast_denoised_streams", ())] == 1
            assert live[("quietcast_denoise_worker_up", (("worker", "0"),))] == 1
            assert live[("quietcast_listener_dropped_packets_total", ())] == 0  # bob keeps up
            assert live[("quietcast_offers_total", (("kind", "publish"),))] == 1
            assert live[("quietcast_offers_total", (("kind", "listen"),))] == 1
            ticked = await _eventually(
                scrape, lambda f: f[("quietcast_denoise_tick_seconds_count", (("worker", "0"),))] >= 10
            )
            assert ticked[("quietcast_denoise_frame_wait_seconds_count", (("worker", "0"),))] >= 10
            await alice.stop_stream()
            ended = await _eventually(scrape, lambda f: f[("quietcast_live_streams", ())] == 0)
            assert ended[("quietcast_listeners", ())] == 0
            await publisher.close()
            await listener.close()
            with pytest.raises(ApiError, match=r"\(404\)"):  # not live any more: counted as a failed offer
                await bob.send_listener_offer("alice", listener.localDescription.sdp)
            failed = await scrape()
            assert failed[("quietcast_offer_failures_total", (("kind", "listen"), ("reason", "not_live")))] == 1


async def _eventually(scrape, condition, timeout_s: float = 15.0) -> dict:
    figures = await scrape()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition(figures):
        assert asyncio.get_running_loop().time() < deadline, figures
        await asyncio.sleep(0.2)
        figures = await scrape()
    return figures
