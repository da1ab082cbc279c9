# The two commands a fresh machine needs. Everything else is installed or started by the scripts they call.
.PHONY: run test lint bench

run:  ## Create the virtualenv, install, migrate and serve on http://$${HOST:-127.0.0.1}:$${PORT:-8000}
	@scripts/run.sh

test:  ## Install/start what the tests need (redis-server, PostgreSQL, Chromium, Firefox ESR, PulseAudio) and run the whole suite
	@scripts/test.sh

lint:
	@scripts/bootstrap.sh >/dev/null && .venv/bin/ruff check . && .venv/bin/python -m mypy

BENCHMARKS = denoise_placement denoise_model latency quality opus_complexity presence capacity overload joining recording_files forwarding failover

bench:  ## Print the tables quoted in the README (about 20 minutes; run on an otherwise idle machine)
	@scripts/bootstrap.sh >/dev/null && for b in $(BENCHMARKS); do echo "== bench.$$b"; .venv/bin/python -m bench.$$b || exit 1; done
