"""Speech: decode a recording, find speech, transcribe it with Whisper, tell rep from customer.

Plain functions over plain data (`pipeline.types.Transcript`); no database, no CLI.
"""

from pipeline.speech.audio import AudioInfo, audio_sha256, decode, is_dual_channel, probe
from pipeline.speech.diarize import DiarizeOptions
from pipeline.speech.loop_guards import collapse_repetition, is_looping
from pipeline.speech.transcribe import (
    ASR,
    TranscribeOptions,
    format_transcript,
    load_asr,
    transcript_json,
)

__all__ = [
    "ASR", "AudioInfo", "DiarizeOptions", "TranscribeOptions", "audio_sha256", "collapse_repetition",
    "decode", "format_transcript", "is_dual_channel", "is_looping", "load_asr", "probe",
    "transcript_json",
]
