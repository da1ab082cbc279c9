// One WebRTC offer/answer exchange with the server. ICE candidates are gathered before the offer is sent,
// because the server answers once and takes no trickled candidates.

import { api } from "./api.js";

const ICE_GATHERING_LIMIT_MS = 3000;

export async function newPeerConnection() {
  const { ice_servers: iceServers } = await api("/api/ice-servers/");
  return new RTCPeerConnection({ iceServers });
}

function iceGatheringDone(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      if (peer.iceGatheringState !== "complete") return;
      peer.removeEventListener("icegatheringstatechange", finish);
      resolve();
    };
    peer.addEventListener("icegatheringstatechange", finish);
    // With unreachable STUN servers gathering can hang; the host candidates gathered so far are enough on a LAN.
    setTimeout(resolve, ICE_GATHERING_LIMIT_MS);
  });
}

export async function negotiate(peer, offerUrl) {
  await peer.setLocalDescription(await peer.createOffer());
  await iceGatheringDone(peer);
  const answer = await api(offerUrl, {
    method: "POST",
    body: { sdp: peer.localDescription.sdp, type: peer.localDescription.type },
  });
  await peer.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  return answer;
}
