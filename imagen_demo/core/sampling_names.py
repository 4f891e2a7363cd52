"""The sampling choices by name, free of diffusers so the CLI can offer them without importing it (see schedulers.py)."""

SCHEDULER_CLASS_NAMES = {  # short name -> diffusers class
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
THRESHOLDING_MODES = ("dynamic", "static", "none")
