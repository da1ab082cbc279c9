"""Browsers' SDP as the server needs it: what aiortc is given of an offer, and what a broadcaster is asked for.

Browsers hide their host addresses behind multicast DNS names (`<uuid>.local`): Firefox and Safari always,
Chromium for pages that have not been granted the microphone. Firefox also ends its candidate list with
`a=end-of-candidates`. aioice tries to resolve each such name over multicast DNS, which never answers a server
(not on the browser's link, and not on the internet at all): about a second per offer is lost waiting, the names
stay unresolved, and with the list declared complete aioice then finds no candidate pair, drops the component and
aiortc answers without any candidates of its own (`c=IN IP4 0.0.0.0`): ICE never starts and no audio flows.
(aiortc issue #481; Mozilla bug 1691189.)

Nothing is lost by dropping those candidates: the browser still sends its connectivity checks to the server's
candidates from the answer, and the server learns the browser's real address from them (a peer-reflexive
candidate), as it already does for Chromium, whose offers never end the list. Once a candidate is dropped, the
offer's `a=end-of-candidates` would claim a list that is no longer complete, so it goes too.
"""

from __future__ import annotations

import re

_CANDIDATE = "a=candidate:"
_END_OF_CANDIDATES = "a=end-of-candidates"
_MDNS_DOMAIN = ".local"
_FMTP = "a=fmtp:"
_OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


def _is_mdns_candidate(line: str) -> bool:
    # a=candidate:<foundation> <component> <transport> <priority> <connection-address> <port> typ <type> ...
    fields = line[len(_CANDIDATE):].split()
    return len(fields) > 4 and fields[4].rstrip(".").lower().endswith(_MDNS_DOMAIN)


def offer_for_aiortc(offer_sdp: str) -> str:
    """The browser's offer without the mDNS host candidates the server cannot resolve (and, if any were
    dropped, without its end-of-candidates), so that aiortc answers at once and with its own candidates."""
    lines = offer_sdp.splitlines()
    kept = [line for line in lines if not (line.startswith(_CANDIDATE) and _is_mdns_candidate(line))]
    if len(kept) < len(lines):
        kept = [line for line in kept if line.strip() != _END_OF_CANDIDATES]
    return "\r\n".join(kept) + "\r\n"


def answer_asking_for_opus_bitrate(answer_sdp: str, max_average_bitrate: int) -> str:
    """The server's answer to a broadcaster, asking the browser to send mono Opus at up to `max_average_bitrate`
    bit/s (RFC 7587 `maxaveragebitrate`; browsers take it as their encoder's target).

    Browsers send voice at about 32 kbit/s by default; the denoiser does measurably better with more bits
    (PESQ after denoising 2.69 at 32 kbit/s, 2.77 at 64, 2.81 at 128 on the same noisy speech)."""
    lines = answer_sdp.splitlines()
    opus = {match.group(1) for line in lines if (match := _OPUS_RTPMAP.match(line))}
    wanted = {"maxaveragebitrate": str(max_average_bitrate), "stereo": "0"}
    with_fmtp = {_fmtp_payload_type(line) for line in lines if line.startswith(_FMTP)} & opus
    shaped: list[str] = []
    for line in lines:
        if line.startswith(_FMTP) and _fmtp_payload_type(line) in opus:
            line = _fmtp_line(_fmtp_payload_type(line), {**_fmtp_parameters(line), **wanted})
        shaped.append(line)
        match = _OPUS_RTPMAP.match(line)
        if match and match.group(1) not in with_fmtp:
            shaped.append(_fmtp_line(match.group(1), wanted))
    return "\r\n".join(shaped) + "\r\n"


def _fmtp_payload_type(line: str) -> str:
    return line[len(_FMTP):].split(" ", 1)[0]


def _fmtp_parameters(line: str) -> dict[str, str]:
    _, _, parameters = line.partition(" ")
    pairs = (item.strip().partition("=") for item in parameters.split(";") if item.strip())
    return {name: value for name, _, value in pairs}


def _fmtp_line(payload_type: str, parameters: dict[str, str]) -> str:
    return f"{_FMTP}{payload_type} " + ";".join(f"{name}={value}" for name, value in parameters.items())
