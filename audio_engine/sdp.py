"""What aiortc is given of a browser's SDP offer.

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

_CANDIDATE = "a=candidate:"
_END_OF_CANDIDATES = "a=end-of-candidates"
_MDNS_DOMAIN = ".local"


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
