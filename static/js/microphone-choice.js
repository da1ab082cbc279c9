// The microphone this browser chose in the mic check, remembered across visits and used when going live.

const CHOICE_KEY = "quietcast.microphone";

export function chosenMicrophone() {
  try { return localStorage.getItem(CHOICE_KEY) || ""; } catch { return ""; }
}

export function rememberMicrophone(deviceId) {
  try {
    if (deviceId) localStorage.setItem(CHOICE_KEY, deviceId);
    else localStorage.removeItem(CHOICE_KEY);
  } catch { /* storage off: the default microphone is used */ }
}

// getUserMedia's audio constraints with the chosen microphone. Asked for as "ideal", not "exact": a microphone
// that was unplugged since gives way to the default one instead of failing.
export function withChosenMicrophone(audio) {
  const deviceId = chosenMicrophone();
  return deviceId ? { ...audio, deviceId: { ideal: deviceId } } : audio;
}
