"""Sound: voice-over, music bed, effects and the mix (see the sound issue)."""
