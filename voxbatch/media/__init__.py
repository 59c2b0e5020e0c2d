"""ffmpeg: probing, decoding to 16 kHz mono PCM, hashing."""
