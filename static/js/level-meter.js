// A live sound level for a MediaStream, drawn into a <meter> (0 = silence, 1 = loud).

const SILENCE_DB = -60;

export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.frame = null;
  }

  attach(stream) {
    this.detach();
    this.context = new AudioContext();
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    this.context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      const rms = Math.sqrt(samples.reduce((sum, sample) => sum + sample * sample, 0) / samples.length);
      const decibels = 20 * Math.log10(rms || 1e-9);
      this.meter.value = Math.min(1, Math.max(0, 1 - decibels / SILENCE_DB));
      this.frame = requestAnimationFrame(draw);
    };
    // A context created outside a click may start suspended; resuming is harmless when it is running.
    this.context.resume().catch(() => {});
    draw();
  }

  detach() {
    cancelAnimationFrame(this.frame);
    this.frame = null;
    this.context?.close().catch(() => {});
    this.context = null;
    this.meter.value = 0;
  }
}
