"""Make the short test clips in tests/data/ with flite text-to-speech (Debian's `flite`) and ffmpeg.

    python tests/data/make_test_audio.py

Writes (a few hundred KB in all; the outputs are committed, so tests do not need flite):
- two_voices.stereo.ogg: rep (flite voice slt) on the LEFT channel, customer (voice awb) on the
  RIGHT, the other channel silent while one speaks, as call recorders store dual-channel calls.
- two_voices.mono.mp3: the downmix of the same call.
- two_voices.truth.json: each turn's speaker, channel, text, start and end seconds.
- quick_turns.mono.mp3 (+ .truth.json): the same voices trading turns after short gaps
  (0.15-0.3 s, as in brisk calls) with one-word replies, for the diarization's turn edges.
- pii_call.stereo.ogg (+ pii_call.truth.json): a dual-channel call in which the customer spells
  a card number, an e-mail address, a phone number and an IBAN, for the test that no stored
  column keeps any of them (`python tests/data/make_test_audio.py pii` makes only this one).
- phone_{en,de,ro,ko}.8k.wav (+ phone.truth.json): one customer line per supported language,
  telephone band (300-3400 Hz, 8 kHz, mu-law, as phone systems record), flite for English and
  espeak-ng for the others (needs `espeak-ng`), for language detection and transcription on
  phone audio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SR = 16000
VOICES = {"rep": "slt", "customer": "awb"}
TURNS = [
    ("rep", "Hi Peter, thanks for taking the call about your renewal."),
    ("customer", "Sure. Honestly, we are thinking about cancelling the contract."),
    ("rep", "I am sorry to hear that. What is the main problem?"),
    ("customer", "The invoices were wrong three months in a row."),
    ("rep", "Let me fix the billing today and call you back tomorrow."),
    ("customer", "Fine, but we are also talking to another vendor."),
]
GAP_S = 0.6  # silence between turns
# (speaker, text, silence after the turn in seconds)
QUICK_TURNS = [
    ("rep", "So the contract covers eleven instruments across both of your sites.", 0.2),
    ("customer", "Right.", 0.25),
    ("rep", "And the new plate readers are covered for the first three years.", 0.15),
    ("customer", "Yes, they came with a warranty, but we may need more support later.", 0.3),
    ("rep", "Okay.", 0.2),
    ("customer", "Our procurement team has asked another vendor for a quote as well.", 0.18),
    ("rep", "I appreciate you telling me. When do they need the numbers?", 0.22),
    ("customer", "End of March.", 0.2),
]
LEAD_S = 0.5  # silence before the first turn
# a customer spelling what a rep asks for, digit by digit as people read cards out, with a cue
# and a callback request so that reminders and their messages carry quotes
PII_TURNS = [
    ("rep", "Thanks for renewing. Can I take the card for the first invoice?"),
    # a card of varied digits: tiny.en heard the test card 4111 1111 1111 1111 as "4111 111" on one
    # CPU and as "4111 11111 11111 11111" on another (a run of ones is where Whisper loses count)
    ("customer", "Sure. The card number is four seven one six, two eight nine three, five five zero one, "
                 "four six two eight. "
                 "If that card is charged twice again, we will cancel the contract."),
    ("rep", "Thank you. And where should the invoice go?"),
    ("customer", "To my e-mail, john dot smith at example dot com. And please call me back in two weeks."),
    ("rep", "And a number to call you back on?"),
    ("customer", "Zero one five one, two three four, five six seven eight."),
    ("rep", "Last one, the account for refunds."),
    ("customer", "The IBAN is D E eight nine, three seven zero four, zero zero four four, zero five three two, "
                 "zero one three zero, zero zero."),
]
# what the test searches every stored column for, in any grouping
PII_SECRETS = {"card": "4716289355014628", "email": "john.smith@example.com", "phone": "01512345678",
               "iban": "DE89370400440532013000"}
# (language, voice, text): a customer on the phone in each language churnwatch supports
PHONE = [
    ("en", "flite:slt", "We will not renew the contract next year. The invoices were wrong three times, "
                        "and we are talking to another vendor about a better price."),
    ("de", "espeak-ng:de", "Wir werden den Vertrag nächstes Jahr nicht verlängern. Die Rechnungen waren dreimal "
                           "falsch, und wir sprechen mit einem anderen Anbieter über einen besseren Preis."),
    ("ro", "espeak-ng:ro", "Nu vom reînnoi contractul anul viitor. Facturile au fost greșite de trei ori, "
                           "și vorbim cu un alt furnizor despre un preț mai bun."),
    ("ko", "espeak-ng:ko", "내년에는 계약을 갱신하지 않겠습니다. 청구서가 세 번이나 틀렸고, "
                           "다른 업체와 더 좋은 가격에 대해 이야기하고 있습니다."),
]


def say(text: str, voice: str, tmp: Path) -> np.ndarray:
    wav = tmp / "say.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(wav), "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"],
        check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.float32)


def phone_clips(tmp: Path) -> None:
    truth = {}
    for lang, voice, text in PHONE:
        engine, name = voice.split(":")
        wav = tmp / f"phone_{lang}.wav"
        if engine == "flite":
            subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(wav)], check=True)
        else:
            subprocess.run(["espeak-ng", "-v", name, "-s", "140", "-w", str(wav), text], check=True)
        subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(wav), "-af",
                        "adelay=500,apad=pad_dur=0.5,highpass=f=300,lowpass=f=3400", "-ar", "8000", "-ac", "1",
                        "-c:a", "pcm_mulaw", str(HERE / f"phone_{lang}.8k.wav")], check=True)
        truth[lang] = {"file": f"phone_{lang}.8k.wav", "voice": voice, "text": text}
    (HERE / "phone.truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n")


def quick_turns(tmp: Path) -> None:
    parts, turns, t = [np.zeros(int(LEAD_S * SR), np.float32)], [], LEAD_S
    for speaker, text, gap in QUICK_TURNS:
        audio = 0.8 * say(text, VOICES[speaker], tmp)
        parts += [audio, np.zeros(int(gap * SR), np.float32)]
        turns.append({"speaker": speaker, "text": text, "start": round(t, 3), "end": round(t + audio.size / SR, 3)})
        t += audio.size / SR + gap
    wav = tmp / "quick.wav"
    sf.write(wav, np.concatenate(parts), SR, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(wav), "-b:a", "32k",
                    str(HERE / "quick_turns.mono.mp3")], check=True)
    truth = {"voices": VOICES, "duration_s": round(t, 3), "turns": turns}
    (HERE / "quick_turns.truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def dual_channel(turns, tmp: Path) -> tuple[np.ndarray, list[dict]]:
    """Rep on the left, customer on the right, the other channel silent while one speaks."""
    left, right, out = [np.zeros(int(LEAD_S * SR), np.float32)], [np.zeros(int(LEAD_S * SR), np.float32)], []
    t = LEAD_S
    for speaker, text in turns:
        audio = 0.8 * say(text, VOICES[speaker], tmp)
        on, off = (left, right) if speaker == "rep" else (right, left)
        on.append(audio)
        off.append(np.zeros_like(audio))
        gap = np.zeros(int(GAP_S * SR), np.float32)
        left.append(gap)
        right.append(gap)
        out.append({"speaker": speaker, "channel": "left" if speaker == "rep" else "right",
                    "text": text, "start": round(t, 3), "end": round(t + audio.size / SR, 3)})
        t += audio.size / SR + GAP_S
    return np.stack([np.concatenate(left), np.concatenate(right)], axis=1), out


def pii_call(tmp: Path) -> None:
    stereo, turns = dual_channel(PII_TURNS, tmp)
    wav = tmp / "pii.wav"
    sf.write(wav, stereo, SR, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(wav), "-c:a", "libvorbis", "-q:a", "1",
                    str(HERE / "pii_call.stereo.ogg")], check=True)
    truth = {"voices": VOICES, "channels": {"left": "rep", "right": "customer"}, "secrets": PII_SECRETS,
             "duration_s": round(stereo.shape[0] / SR, 3), "turns": turns}
    (HERE / "pii_call.truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def main() -> None:
    if sys.argv[1:] == ["pii"]:
        with tempfile.TemporaryDirectory() as tmp_name:
            pii_call(Path(tmp_name))
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        left, right, turns = [np.zeros(int(LEAD_S * SR), np.float32)], [], []
        right.append(np.zeros_like(left[0]))
        t = LEAD_S
        for speaker, text in TURNS:
            audio = 0.8 * say(text, VOICES[speaker], tmp)
            silence = np.zeros_like(audio)
            on, off = (left, right) if speaker == "rep" else (right, left)
            on.append(audio)
            off.append(silence)
            gap = np.zeros(int(GAP_S * SR), np.float32)
            left.append(gap)
            right.append(gap)
            duration = audio.size / SR
            turns.append({"speaker": speaker, "channel": "left" if speaker == "rep" else "right",
                          "text": text, "start": round(t, 3), "end": round(t + duration, 3)})
            t += duration + GAP_S
        stereo = np.stack([np.concatenate(left), np.concatenate(right)], axis=1)
        wav = tmp / "call.wav"
        sf.write(wav, stereo, SR, subtype="PCM_16")
        subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(wav), "-c:a", "libvorbis",
                        "-q:a", "1", str(HERE / "two_voices.stereo.ogg")], check=True)
        subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(wav), "-ac", "1", "-b:a", "32k",
                        str(HERE / "two_voices.mono.mp3")], check=True)
        quick_turns(tmp)
        phone_clips(tmp)
        pii_call(tmp)
    truth = {"voices": VOICES, "channels": {"left": "rep", "right": "customer"},
             "duration_s": round(stereo.shape[0] / SR, 3), "turns": turns}
    (HERE / "two_voices.truth.json").write_text(json.dumps(truth, indent=2) + "\n")


if __name__ == "__main__":
    main()
