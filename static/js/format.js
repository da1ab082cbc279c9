// How durations and dates are written on the page. Times come from the server as ISO 8601 instants and are
// written here, in the viewer's own time zone and locale, in one format wherever they appear.

export function formatDuration(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  if (hours) return `${hours}:${String(minutes).padStart(2, "0")}:${rest}`;
  return `${String(minutes).padStart(2, "0")}:${rest}`;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});

export function formatDate(isoString) {
  return DATE_FORMAT.format(new Date(isoString));
}

// Writes every `<time data-local-time datetime="…">` under `root` in the viewer's zone (the server wrote UTC).
export function localizeTimes(root = document) {
  for (const time of root.querySelectorAll("time[data-local-time][datetime]")) {
    if (time.dateTime) time.textContent = formatDate(time.dateTime);
  }
}
