"""`quietcast` command line: publish a WAV file live, or listen to a friend and save what you hear.

    quietcast --server http://127.0.0.1:8000 publish --user alice --password pw [--no-denoise] [--seconds N] in.wav
    quietcast --server http://127.0.0.1:8000 listen --user bob --password pw alice --out heard.wav [--seconds N]
    quietcast --server http://127.0.0.1:8000 denoise --user alice --password pw noisy.wav --out clean.wav
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp
import av

from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file
from audio_engine.recorder import WavRecorder
from quietcast_cli.api import ApiError, QuietcastApi

# After the last sample is sent, give it time to cross the network before stopping the stream.
DRAIN_SECONDS = 0.5


async def publish(api: QuietcastApi, audio_path: Path, *, denoise: bool, seconds: float | None) -> float:
    """Stream the file in real time as the logged-in user's live stream; returns the seconds sent."""
    samples = read_audio_file(audio_path, seconds)
    ice_servers = await api.ice_servers()
    await api.start_stream(denoise)
    track = PacedAudioTrack(samples)
    pc = None
    try:
        pc = await connect_publisher(track, api.send_publisher_offer, ice_servers)
        await track.finished.wait()
        await asyncio.sleep(DRAIN_SECONDS)
    finally:
        if pc is not None:
            await pc.close()
        await api.stop_stream()
    return track.seconds_sent


async def listen(api: QuietcastApi, username: str, out_path: Path, *, seconds: float | None) -> float:
    """Save `username`'s live stream to out_path until it ends (or for `seconds`); returns seconds heard."""
    ice_servers = await api.ice_servers()
    recorder = WavRecorder(out_path)

    async def signal(offer: str) -> str:
        return await api.send_listener_offer(username, offer)

    try:
        pc, received = await connect_listener(signal, lambda samples, _at: recorder.write(samples), ice_servers)
    except BaseException:
        recorder.abandon()
        recorder.partial_path.unlink(missing_ok=True)
        raise
    try:
        await asyncio.wait_for(received, seconds)
    except TimeoutError:
        pass
    finally:
        await pc.close()
        result = recorder.finalize()
    return result.duration_s


async def denoise(api: QuietcastApi, audio_path: Path, out_path: Path) -> None:
    """Have the server denoise a file (it polls the job of a long one) and write the WAV it returns."""

    def show(progress: float) -> None:
        print(f"denoising: {progress:.0%}", file=sys.stderr)

    wav = await api.denoise_file(audio_path, on_progress=show)
    out_path.write_bytes(wav)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quietcast", description="Quietcast headless client")
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="server base URL")
    commands = parser.add_subparsers(dest="command", required=True)

    publish_parser = commands.add_parser("publish", help="go live with an audio file, in real time")
    publish_parser.add_argument("audio", type=Path, help="audio file (WAV or anything FFmpeg reads)")
    publish_parser.add_argument("--no-denoise", dest="denoise", action="store_false", help="do not denoise")

    listen_parser = commands.add_parser("listen", help="listen to a friend's live stream and save it")
    listen_parser.add_argument("username", help="whose stream to listen to")
    listen_parser.add_argument("--out", type=Path, required=True, help="WAV file to write")

    for command in (publish_parser, listen_parser):
        command.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")

    denoise_parser = commands.add_parser("denoise", help="have the server denoise a file (48 kHz mono WAV back)")
    denoise_parser.add_argument("audio", type=Path, help="WAV, FLAC, Ogg/Opus, MP3 or WebM file")
    denoise_parser.add_argument("--out", type=Path, required=True, help="WAV file to write")

    for command in (publish_parser, listen_parser, denoise_parser):
        command.add_argument("--user", required=True)
        command.add_argument("--password", required=True)
    return parser


async def run(args: argparse.Namespace) -> str:
    # A short file is denoised within the request: allow for that, and for a queue ahead of it.
    total_s = 300 if args.command == "denoise" else 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=total_s)) as session:
        api = QuietcastApi(args.server, session)
        await api.login(args.user, args.password)
        if args.command == "denoise":
            await denoise(api, args.audio, args.out)
            return f"denoised {args.audio} -> {args.out}"
        if args.command == "publish":
            sent = await publish(api, args.audio, denoise=args.denoise, seconds=args.seconds)
            return f"published {sent:.1f} s from {args.audio}"
        heard = await listen(api, args.username, args.out, seconds=args.seconds)
        return f"heard {heard:.1f} s from {args.username} -> {args.out}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(asyncio.run(run(args)))
    except ApiError as exc:
        print(f"quietcast: {exc}", file=sys.stderr)
        return 1
    except (OSError, av.FFmpegError) as exc:
        print(f"quietcast: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
