"""Privacy: PII detectors, redaction before anything is stored, and the purge of old data."""

from pipeline.privacy.detectors import DETECTORS, iban_ok, luhn_ok
from pipeline.privacy.redact import RedactOptions, redact_cue, redact_source, redact_text, redact_transcript

__all__ = ["DETECTORS", "RedactOptions", "iban_ok", "luhn_ok", "redact_cue", "redact_source", "redact_text", "redact_transcript"]
