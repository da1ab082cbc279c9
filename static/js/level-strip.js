// A live level strip on a friend's page: the received stream's loudness over the last few seconds, scrolling
// left, from a WebAudio analyser on whatever stream the page's live <audio> element plays.

const SILENCE_DB = -60;
const STEP_MS = 50; // one bar per step: 6 s across 120 bars

export class LevelStrip {
  constructor(canvas, audio, bars = 120) {
    this.canvas = canvas;
    this.audio = audio;
    this.levels = new Array(bars).fill(0);
    this.context = null;
    this.source = null;
    this.stream = null;
    this.trackCount = 0;
    this.lastStep = 0;
    this.frame = null;
    audio.addEventListener("play", () => this.start());
    audio.addEventListener("emptied", () => this.stop());
    audio.addEventListener("pause", () => this.stop());
  }

  start() {
    if (this.frame !== null) return;
    this.context ??= new AudioContext();
    this.context.resume().catch(() => {});
    this.analyser ??= Object.assign(this.context.createAnalyser(), { fftSize: 1024 });
    this.samples ??= new Float32Array(this.analyser.fftSize);
    const tick = (now) => {
      this.follow(this.audio.srcObject);
      if (now - this.lastStep >= STEP_MS) {
        this.lastStep = now;
        this.levels.shift();
        this.levels.push(this.source ? this.level() : 0);
        this.draw();
      }
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.frame = null;
    this.source?.disconnect();
    this.source = null;
    this.stream = null;
    this.levels.fill(0);
    this.draw();
  }

  // The page puts a new MediaStream in the element for each connection and adds the track once it arrives.
  follow(stream) {
    const tracks = stream instanceof MediaStream ? stream.getAudioTracks().length : 0;
    if (stream === this.stream && tracks === this.trackCount) return;
    this.source?.disconnect();
    this.source = tracks ? this.context.createMediaStreamSource(stream) : null;
    this.source?.connect(this.analyser);
    this.stream = stream;
    this.trackCount = tracks;
  }

  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    const rms = Math.sqrt(this.samples.reduce((sum, sample) => sum + sample * sample, 0) / this.samples.length);
    return Math.min(1, Math.max(0, 1 - 20 * Math.log10(rms || 1e-9) / SILENCE_DB));
  }

  draw() {
    const { canvas, levels } = this;
    const context = canvas.getContext("2d");
    const barWidth = canvas.width / levels.length;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = getComputedStyle(canvas).color;
    levels.forEach((level, index) => {
      const height = level * canvas.height;
      context.fillRect(index * barWidth, canvas.height - height, Math.max(1, barWidth - 1), height);
    });
    canvas.dataset.level = levels.at(-1).toFixed(2);
  }
}
