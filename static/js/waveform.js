// A recording's waveform under its player: the peaks the server computed once, the part already played in the
// accent colour, and a click anywhere on it seeks there.

const BAR_GAP = 1;

export class Waveform {
  constructor(canvas, player, durationSeconds) {
    this.canvas = canvas;
    this.player = player;
    this.fallbackDuration = durationSeconds;
    this.peaks = [];
    canvas.addEventListener("click", (event) => this.seek(event));
    for (const name of ["timeupdate", "seeked", "loadedmetadata", "emptied"]) {
      player.addEventListener(name, () => this.draw());
    }
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setPeaks(peaks, durationSeconds) {
    this.peaks = peaks;
    this.fallbackDuration = durationSeconds;
    this.canvas.hidden = peaks.length === 0;
    this.draw();
  }

  get duration() {
    return Number.isFinite(this.player.duration) && this.player.duration > 0
      ? this.player.duration : this.fallbackDuration;
  }

  seek(event) {
    const box = this.canvas.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    if (!this.duration) return;
    this.player.currentTime = fraction * this.duration;
    this.draw();
  }

  draw() {
    const { canvas, peaks } = this;
    const width = canvas.clientWidth;
    if (!width || peaks.length === 0) return;
    const scale = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(canvas.clientHeight * scale);
    const context = canvas.getContext("2d");
    const style = getComputedStyle(canvas);
    const played = this.duration ? this.player.currentTime / this.duration : 0;
    const barWidth = canvas.width / peaks.length;
    const middle = canvas.height / 2;
    // Scaled to the loudest slice, so a quiet recording's shape is as readable as a loud one's.
    const loudest = Math.max(0.01, ...peaks);
    context.clearRect(0, 0, canvas.width, canvas.height);
    peaks.forEach((peak, index) => {
      const height = Math.max(scale, (peak / loudest) * canvas.height);
      context.fillStyle = (index + 0.5) / peaks.length <= played ? style.color : style.borderColor;
      context.fillRect(index * barWidth, middle - height / 2, Math.max(scale, barWidth - BAR_GAP * scale), height);
    });
  }
}

export function peaksFrom(attribute) {
  return attribute ? attribute.split(",").map(Number) : [];
}
