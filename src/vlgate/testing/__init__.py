"""The offline provider emulator (placeholder while it is being built)."""
