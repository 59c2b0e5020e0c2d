#!/usr/bin/env bash
# Regenerates the clips in voxbatch/sample_audio/: English speech from espeak-ng, with clear pauses
# (SSML breaks) between phrases, converted by ffmpeg (imageio-ffmpeg's bundled one by default).
# Usage: scripts/make_sample_audio.sh      (env: FFMPEG=/path/to/ffmpeg, PYTHON=/work/venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../voxbatch/sample_audio"
PYTHON="${PYTHON:-python3}"
FFMPEG="${FFMPEG:-$("$PYTHON" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pause='<break time="700ms"/>'

# speak NAME VOICE WORDS_PER_MINUTE SSML_TEXT
speak() {
    espeak-ng -m -v "$2" -s "$3" -w "$tmp/$1.wav" "<speak>$4</speak>"
}
speak voxtral_intro en-us 160 "Welcome to voxbatch. $pause Voxtral turns this recording into text."
speak kubernetes_meeting en-gb 160 "The Kubernetes meeting starts at ten. $pause Please bring the deployment notes."
speak standup en-us 160 "Yesterday I fixed the login bug. $pause Today I will write the tests. $pause Nothing is blocking me."
speak release_plan en-gb-x-rp 150 "Our release is planned for Friday. $pause The meeting notes are in the shared folder."
speak counting en-us 160 "One, two, three. $pause Four, five, six. $pause Seven, eight."

# convert NAME OUTPUT FFMPEG_OUTPUT_OPTIONS...
# 0.3 s of silence before the speech and 0.5 s after; no metadata, bit-exact for reproducible files.
convert() {
    "$FFMPEG" -hide_banner -nostdin -loglevel error -y -i "file:$tmp/$1.wav" \
        -af "adelay=300:all=1,apad=pad_dur=0.5" -ac 1 -map_metadata -1 \
        -fflags +bitexact -flags:a +bitexact "${@:3}" "file:$PWD/$2"
}
convert voxtral_intro voxtral_intro.wav -ar 16000 -c:a pcm_s16le
convert kubernetes_meeting kubernetes_meeting.mp3 -ar 22050 -c:a libmp3lame -b:a 32k
convert standup standup.ogg -c:a libopus -b:a 24k
convert release_plan release_plan.m4a -ar 22050 -c:a aac -b:a 40k
convert counting counting.flac -ar 16000 -c:a flac
ls -l voxtral_intro.wav kubernetes_meeting.mp3 standup.ogg release_plan.m4a counting.flac
