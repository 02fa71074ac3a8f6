# diffusekit: `make demo` and `make test` set themselves up on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on this machine; GPU users override, e.g. TORCH_SPEC="torch==2.13.0 --index-url ...".
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint tsbad-env bench bench-smd bench-medical bench-pose bench-ddhpose bench-rti bench-video bench-perception3d clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files make the installs idempotent: re-run only when pyproject.toml changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[all]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/diffusekit demo --out demo_out

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

# The quick benchmarks (minutes); bench-smd trains ImDiffusion on three real SMD machines and runs TSB-AD's
# detectors beside it (hours on a CPU);
# bench-medical trains Echo-DND and a U-Net on synthetic CAMUS for 15 minutes each, then sweeps the samplers;
# bench-pose trains DiffPose and a heatmap baseline on synthetic PoseTrack18 for 10 minutes each; bench-ddhpose
# DDHPose, a deterministic regressor and a 4-regressor ensemble on synthetic Human3.6M for 40 minutes each; bench-rti
# Diffusion Policy on the point-mass task and Push-T, then DDPM-100 / DDIM-10 / RTI from the same checkpoints;
# bench-video DIVD-tiny, its WTSA / MRPE ablations and a regressor on synthetic GoPro (6 minutes each), then
# sampling steps, tiling and the memory of a 1280 x 720 clip; bench-perception3d no / late / attention fusion and
# CoDiff on synthetic OPV2V (10 minutes per detector, CoDiff's two further stages 4 + 6), pose noise and delay sweeps.
QUICK_BENCH := core_samplers noise_assignment core_throughput timeseries_model_speed
bench: $(VENV)/.installed-dev
	@for f in $(QUICK_BENCH); do echo "== benchmarks/$$f.py"; $(BIN)/python benchmarks/$$f.py || exit 1; done

# TSB-AD (the time-series anomaly benchmark suite) pins numpy<2: its detectors run in their own environment, created
# here on first use; benchmarks/timeseries_smd.py talks to it through files (benchmarks/tsb_ad_peers.py).
TSBAD_VENV ?= .venv-tsbad
$(TSBAD_VENV)/.installed:
	$(PYTHON) -m venv $(TSBAD_VENV)
	$(TSBAD_VENV)/bin/pip install -q --upgrade pip
	$(TSBAD_VENV)/bin/pip install -q $(TORCH_SPEC) "tsb-ad==1.5"
	touch $@

tsbad-env: $(TSBAD_VENV)/.installed

bench-smd: $(VENV)/.installed-dev $(TSBAD_VENV)/.installed
	$(BIN)/python benchmarks/timeseries_smd.py --peers-python $(TSBAD_VENV)/bin/python

bench-pose: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/pose_diffpose.py

bench-ddhpose: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/pose_ddhpose.py --minutes 40 --parallel

bench-rti: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/robotics_rti.py

bench-video: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/video_divd.py

bench-perception3d: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/perception3d_codiff.py

bench-medical: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/medical_echo.py

clean:
	rm -rf $(VENV) $(TSBAD_VENV) build dist *.egg-info demo_out
