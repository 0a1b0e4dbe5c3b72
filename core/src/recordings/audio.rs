//! What a recording file holds, judged from its first bytes: enough to tell a supervisor
//! whether it will play in the browser, how long it is, and whether it was cut short, without
//! reading whole recordings.

/// How much of a file `inspect` wants to see; headers of the formats PBXes write fit well
/// within it.
pub const HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Wav,
    Mp3,
    Ogg,
}

impl AudioFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Ogg => "audio/ogg",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "WAV",
            AudioFormat::Mp3 => "MP3",
            AudioFormat::Ogg => "Ogg",
        }
    }
}

/// What was learnt about one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub format: AudioFormat,
    /// From the header; `None` when the header does not tell or is not within the bytes seen.
    pub duration_s: Option<f64>,
    /// The header promises more audio than the file holds: the recording was cut off, often
    /// because the PBX stopped or the disk filled up while recording.
    pub truncated: bool,
    /// Whether a Chromium-based browser plays it in an `<audio>` element.
    pub playable: bool,
    /// Why it does not play, or how it was cut short, for a person to read.
    pub note: Option<String>,
}

/// Why a file is not taken as a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAudio {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a WAV, MP3 or Ogg recording; it looks like {0}")]
    LooksLike(&'static str),
    #[error("the file is not a WAV, MP3 or Ogg recording")]
    Unknown,
}

/// Tells what a recording is from `head`, its first bytes (up to [`HEAD_BYTES`], or the whole
/// file when smaller), and `file_size`, its full length on disk.
pub fn inspect(head: &[u8], file_size: u64) -> Result<Inspection, NotAudio> {
    if head.is_empty() {
        return Err(NotAudio::Empty);
    }
    // The bytes in hand prove the file is at least this long, whatever the caller's stat said.
    let file_size = file_size.max(head.len() as u64);
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WAVE" {
        return Ok(inspect_wav(head, file_size));
    }
    if head.starts_with(b"ID3") {
        return Ok(inspect_id3_mp3(head, file_size));
    }
    if let Some(frame) = FrameHeader::read(head) {
        return Ok(mp3_inspection(Some(frame), 0, file_size));
    }
    if head.starts_with(b"OggS") {
        return Ok(inspect_ogg(head));
    }
    Err(describe_other(head))
}

fn u16_le(bytes: &[u8], at: usize) -> Option<u16> {
    let slice = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([slice[0], slice[1]]))
}

fn u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

// WAVE format tags (the `fmt ` chunk's first field) this module knows by name.
const WAVE_PCM: u16 = 0x0001;
const WAVE_MS_ADPCM: u16 = 0x0002;
const WAVE_FLOAT: u16 = 0x0003;
const WAVE_ALAW: u16 = 0x0006;
const WAVE_MULAW: u16 = 0x0007;
const WAVE_IMA_ADPCM: u16 = 0x0011;
const WAVE_G723_ADPCM: u16 = 0x0014;
const WAVE_GSM610: u16 = 0x0031;
const WAVE_G721_ADPCM: u16 = 0x0040;
const WAVE_MPEG: u16 = 0x0050;
const WAVE_MP3: u16 = 0x0055;
const WAVE_G726_ADPCM: u16 = 0x0064;
const WAVE_EXTENSIBLE: u16 = 0xFFFE;

/// What the `fmt ` chunk says that matters here.
struct WavFormat {
    /// The codec, with WAVE_FORMAT_EXTENSIBLE already resolved to its sub-format when known.
    tag: u16,
    byte_rate: u32,
    bits_per_sample: u16,
}

impl WavFormat {
    fn read(body: &[u8]) -> Option<WavFormat> {
        let declared_tag = u16_le(body, 0)?;
        let byte_rate = u32_le(body, 8)?;
        let bits_per_sample = u16_le(body, 14)?;
        // An extensible header names its real codec in the first two bytes of the sub-format
        // GUID, which sits 24 bytes into the chunk.
        let tag = if declared_tag == WAVE_EXTENSIBLE {
            u16_le(body, 24).unwrap_or(WAVE_EXTENSIBLE)
        } else {
            declared_tag
        };
        Some(WavFormat {
            tag,
            byte_rate,
            bits_per_sample,
        })
    }

    /// `None` when Chromium plays it, or why not. Chromium decodes WAV itself only for PCM,
    /// float, A-law and µ-law; everything else needs converting first.
    fn unplayable_reason(&self) -> Option<String> {
        let codec = match self.tag {
            WAVE_PCM => {
                return match self.bits_per_sample {
                    8 | 16 | 24 | 32 => None,
                    bits => Some(format!(
                        "WAV with {bits}-bit PCM audio does not play in browsers; convert to 16-bit PCM or MP3"
                    )),
                };
            }
            WAVE_FLOAT | WAVE_ALAW | WAVE_MULAW => return None,
            // The sub-format was beyond the bytes seen; most such files are plain PCM.
            WAVE_EXTENSIBLE => return None,
            WAVE_GSM610 => "GSM 6.10 audio (wav49)".to_owned(),
            WAVE_IMA_ADPCM => "IMA ADPCM audio".to_owned(),
            WAVE_MS_ADPCM => "Microsoft ADPCM audio".to_owned(),
            WAVE_G721_ADPCM => "G.721 ADPCM audio".to_owned(),
            WAVE_G723_ADPCM => "G.723 ADPCM audio".to_owned(),
            WAVE_G726_ADPCM => "G.726 ADPCM audio".to_owned(),
            WAVE_MPEG | WAVE_MP3 => "MPEG audio".to_owned(),
            other => format!("audio in format 0x{other:04X}"),
        };
        Some(format!(
            "WAV with {codec} does not play in browsers; convert to PCM or MP3"
        ))
    }
}

/// Where the `data` chunk starts and how long its header says it is.
struct WavData {
    offset: u64,
    declared_size: u32,
}

impl WavData {
    /// Writers that stream to disk put 0 or all ones here and never come back to fix it.
    fn size_unknown(&self) -> bool {
        self.declared_size == 0 || self.declared_size == u32::MAX
    }
}

/// Walks the RIFF chunks within `head` for `fmt ` and `data`.
fn find_wav_chunks(head: &[u8]) -> (Option<WavFormat>, Option<WavData>) {
    let mut format = None;
    let mut offset = 12usize;
    while let Some(header) = head.get(offset..).and_then(|rest| rest.get(..8)) {
        let id = &header[..4];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_start = offset + 8;
        match id {
            b"fmt " => {
                let body_end = head.len().min(body_start.saturating_add(size as usize));
                format = head.get(body_start..body_end).and_then(WavFormat::read);
            }
            b"data" => {
                let data = WavData {
                    offset: body_start as u64,
                    declared_size: size,
                };
                // The audio runs to the end of the file, so no chunk after it is within reach.
                return (format, Some(data));
            }
            _ => {}
        }
        // Chunk bodies are padded to an even length.
        let padded = u64::from(size) + u64::from(size & 1);
        let Some(next) = usize::try_from(padded)
            .ok()
            .and_then(|padded| body_start.checked_add(padded))
        else {
            break;
        };
        offset = next;
    }
    (format, None)
}

fn inspect_wav(head: &[u8], file_size: u64) -> Inspection {
    let riff_size = u32_le(head, 4).unwrap_or(0);
    let (format, data) = find_wav_chunks(head);
    let byte_rate = format
        .as_ref()
        .map(|format| format.byte_rate)
        .filter(|rate| *rate > 0)
        .map(f64::from);
    let seconds = |bytes: u64| byte_rate.map(|rate| bytes as f64 / rate);

    let mut duration_s = None;
    let mut truncation = None;
    if let Some(data) = &data {
        let available = file_size.saturating_sub(data.offset);
        if data.size_unknown() {
            duration_s = seconds(available);
        } else {
            let declared = u64::from(data.declared_size);
            duration_s = seconds(declared);
            if data.offset + declared > file_size {
                truncation = Some(match (seconds(available), seconds(declared)) {
                    (Some(have), Some(want)) => {
                        format!("the file ends before its header says ({have:.1} of {want:.1} s)")
                    }
                    _ => format!("the file ends before its header says ({available} of {declared} bytes of audio)"),
                });
            }
        }
    }
    let streamed = data.as_ref().is_some_and(WavData::size_unknown);
    let riff_declared_end = u64::from(riff_size) + 8;
    let riff_size_known = riff_size != 0 && riff_size != u32::MAX;
    if truncation.is_none() && !streamed && riff_size_known && riff_declared_end > file_size {
        truncation = Some(format!(
            "the file ends before its header says ({file_size} of {riff_declared_end} bytes)"
        ));
    }

    let unplayable = format.as_ref().and_then(WavFormat::unplayable_reason);
    let playable = unplayable.is_none();
    let truncated = truncation.is_some();
    let note = match (unplayable, truncation) {
        (Some(unplayable), Some(truncation)) => Some(format!("{unplayable}; {truncation}")),
        (unplayable, truncation) => unplayable.or(truncation),
    };
    Inspection {
        format: AudioFormat::Wav,
        duration_s,
        truncated,
        playable,
        note,
    }
}

/// The parts of an MPEG audio frame header needed to spot a frame and size the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    /// 1 for MPEG-1; 2 for MPEG-2 and MPEG-2.5, which share their layer III bitrates.
    version: u8,
    layer: u8,
    bitrate_index: u8,
}

impl FrameHeader {
    /// The frame header at the start of `bytes`, if it is a plausible one.
    fn read(bytes: &[u8]) -> Option<FrameHeader> {
        let &[sync, flags, rates, _, ..] = bytes else {
            return None;
        };
        if sync != 0xFF || flags & 0xE0 != 0xE0 {
            return None;
        }
        // Also the UTF-16 little-endian byte-order mark; MPEG-1 layer I with CRC is too rare
        // in recordings to be worth mistaking text for audio.
        if flags == 0xFE {
            return None;
        }
        let version = match (flags >> 3) & 0b11 {
            0b11 => 1,
            0b10 | 0b00 => 2,
            _ => return None,
        };
        let layer = match (flags >> 1) & 0b11 {
            0b01 => 3,
            0b10 => 2,
            0b11 => 1,
            _ => return None,
        };
        // Sample-rate index 3 is reserved: not a real frame.
        if (rates >> 2) & 0b11 == 0b11 {
            return None;
        }
        Some(FrameHeader {
            version,
            layer,
            bitrate_index: rates >> 4,
        })
    }

    /// Bits per second for layer III; `None` for free-format and invalid indexes, and for
    /// layers I and II, which PBXes do not write.
    fn layer3_bitrate(self) -> Option<u32> {
        const MPEG1_KBPS: [u32; 14] = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
        const MPEG2_KBPS: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        if self.layer != 3 {
            return None;
        }
        let table = if self.version == 1 { &MPEG1_KBPS } else { &MPEG2_KBPS };
        let index = usize::from(self.bitrate_index).checked_sub(1)?;
        table.get(index).map(|kbps| kbps * 1000)
    }
}

fn inspect_id3_mp3(head: &[u8], file_size: u64) -> Inspection {
    let Some(tag_size) = head.get(6..10) else {
        return mp3_inspection(None, 0, file_size);
    };
    // Syncsafe: seven bits per byte, so the tag never contains a false frame sync.
    let tag_size = tag_size
        .iter()
        .fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7F));
    let has_footer = head.get(5).is_some_and(|flags| flags & 0x10 != 0);
    let mut audio_start = 10 + tag_size + if has_footer { 10 } else { 0 };
    // Some taggers pad with zeros beyond the declared size.
    while head.get(audio_start) == Some(&0) {
        audio_start += 1;
    }
    let frame = head.get(audio_start..).and_then(FrameHeader::read);
    mp3_inspection(frame, audio_start as u64, file_size)
}

/// A constant-bitrate estimate: exact for the CBR files PBXes write, rough for VBR ones.
fn mp3_inspection(frame: Option<FrameHeader>, audio_start: u64, file_size: u64) -> Inspection {
    let duration_s = frame
        .and_then(FrameHeader::layer3_bitrate)
        .map(|bitrate| file_size.saturating_sub(audio_start) as f64 * 8.0 / f64::from(bitrate));
    Inspection {
        format: AudioFormat::Mp3,
        duration_s,
        truncated: false,
        playable: true,
        note: None,
    }
}

fn inspect_ogg(head: &[u8]) -> Inspection {
    // The first page: a 27-byte header whose last byte counts the segment-table entries that
    // follow it, then the codec's identification packet.
    let payload = head
        .get(26)
        .and_then(|segments| head.get(27 + usize::from(*segments)..));
    let speex = payload.is_some_and(|payload| payload.starts_with(b"Speex   "));
    // Opus, Vorbis and FLAC play; Speex is the one Ogg codec a PBX writes that does not.
    let note = speex.then(|| "Ogg with Speex audio does not play in browsers; convert to Opus or MP3".to_owned());
    Inspection {
        format: AudioFormat::Ogg,
        duration_s: None,
        truncated: false,
        playable: !speex,
        note,
    }
}

/// Names a few things that end up in recording folders by mistake, so the message helps.
fn describe_other(head: &[u8]) -> NotAudio {
    const SIGNATURES: [(&[u8], &str); 7] = [
        (b"fLaC", "FLAC audio"),
        (b"RIFF", "a RIFF file that is not WAVE audio"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"\xFF\xFE", "UTF-16 text"),
        (b"\xFE\xFF", "UTF-16 text"),
    ];
    if let Some(&(_, looks_like)) = SIGNATURES.iter().find(|&&(magic, _)| head.starts_with(magic)) {
        return NotAudio::LooksLike(looks_like);
    }
    if !is_text(head) {
        return NotAudio::Unknown;
    }
    if head.trim_ascii_start().starts_with(b"<") {
        NotAudio::LooksLike("an HTML or XML page")
    } else {
        NotAudio::LooksLike("text")
    }
}

/// UTF-8 without control characters other than line breaks and tabs. The head may end in the
/// middle of a character, which still counts as text.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            // Only the cut-off character at the end is invalid.
            match std::str::from_utf8(&head[..error.valid_up_to()]) {
                Ok(text) => text,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|ch| !ch.is_control() || matches!(ch, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a duration");
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    fn fmt_chunk(tag: u16, bits: u16, byte_rate: u32, block_align: u16) -> Vec<u8> {
        let mut chunk = Vec::new();
        chunk.extend_from_slice(b"fmt ");
        chunk.extend_from_slice(&16u32.to_le_bytes());
        chunk.extend_from_slice(&tag.to_le_bytes());
        chunk.extend_from_slice(&1u16.to_le_bytes());
        chunk.extend_from_slice(&8000u32.to_le_bytes());
        chunk.extend_from_slice(&byte_rate.to_le_bytes());
        chunk.extend_from_slice(&block_align.to_le_bytes());
        chunk.extend_from_slice(&bits.to_le_bytes());
        chunk
    }

    /// A WAV file: RIFF header, the given chunks, then a `data` chunk declaring
    /// `declared_data` bytes and holding `present_data` zero bytes.
    fn wav_with(chunks: &[Vec<u8>], declared_data: u32, present_data: usize) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(b"WAVE");
        for chunk in chunks {
            body.extend_from_slice(chunk);
        }
        body.extend_from_slice(b"data");
        body.extend_from_slice(&declared_data.to_le_bytes());
        let riff_size = (body.len() as u32).wrapping_add(declared_data);
        body.resize(body.len() + present_data, 0);
        let mut file = Vec::new();
        file.extend_from_slice(b"RIFF");
        file.extend_from_slice(&riff_size.to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    /// 8 kHz mono 16-bit PCM: 16,000 bytes a second.
    fn pcm_wav(declared_data: u32, present_data: usize) -> Vec<u8> {
        wav_with(&[fmt_chunk(WAVE_PCM, 16, 16_000, 2)], declared_data, present_data)
    }

    fn whole(file: &[u8]) -> Inspection {
        inspect(file, file.len() as u64).expect("recognised")
    }

    #[test]
    fn pcm_wav_duration() {
        let file = pcm_wav(16_000, 16_000);
        let inspection = whole(&file);
        assert_eq!(inspection.format, AudioFormat::Wav);
        assert_close(inspection.duration_s, 1.0);
        assert!(!inspection.truncated);
        assert!(inspection.playable);
        assert_eq!(inspection.note, None);
    }

    #[test]
    fn wav_with_empty_data() {
        // A declared size of zero is read as a streaming writer's placeholder.
        let file = pcm_wav(0, 0);
        let inspection = whole(&file);
        assert_close(inspection.duration_s, 0.0);
        assert!(!inspection.truncated);
    }

    #[test]
    fn truncated_wav() {
        let file = pcm_wav(32_000, 16_000);
        let inspection = whole(&file);
        assert!(inspection.truncated);
        assert_close(inspection.duration_s, 2.0);
        assert!(inspection.playable);
        assert_eq!(
            inspection.note.as_deref(),
            Some("the file ends before its header says (1.0 of 2.0 s)")
        );
    }

    #[test]
    fn head_of_a_larger_file_is_not_truncated() {
        let file = pcm_wav(48_000, 48_000);
        let inspection = inspect(&file[..100], file.len() as u64).expect("recognised");
        assert!(!inspection.truncated);
        assert_close(inspection.duration_s, 3.0);
    }

    #[test]
    fn file_size_smaller_than_head_is_corrected() {
        let file = pcm_wav(16_000, 16_000);
        let inspection = inspect(&file, 10).expect("recognised");
        assert!(!inspection.truncated);
    }

    #[test]
    fn riff_size_beyond_the_file_is_truncated() {
        let mut file = pcm_wav(16_000, 16_000);
        let riff_size = u32_le(&file, 4).expect("riff size") + 1000;
        file[4..8].copy_from_slice(&riff_size.to_le_bytes());
        let inspection = whole(&file);
        assert!(inspection.truncated);
        let note = inspection.note.expect("a note");
        assert!(note.contains("bytes"), "{note}");
    }

    #[test]
    fn streaming_wav_sizes_count_what_is_there() {
        for placeholder in [0, u32::MAX] {
            let file = pcm_wav(placeholder, 8_000);
            let inspection = whole(&file);
            assert!(!inspection.truncated, "{placeholder}");
            assert_close(inspection.duration_s, 0.5);
            assert_eq!(inspection.note, None);
        }
    }

    #[test]
    fn gsm_wav_does_not_play() {
        let file = wav_with(&[fmt_chunk(WAVE_GSM610, 0, 1625, 65)], 3250, 3250);
        let inspection = whole(&file);
        assert_close(inspection.duration_s, 2.0);
        assert!(!inspection.playable);
        assert!(!inspection.truncated);
        assert_eq!(
            inspection.note.as_deref(),
            Some("WAV with GSM 6.10 audio (wav49) does not play in browsers; convert to PCM or MP3")
        );
    }

    #[test]
    fn truncated_gsm_wav_notes_both() {
        let file = wav_with(&[fmt_chunk(WAVE_GSM610, 0, 1625, 65)], 3250, 1625);
        let inspection = whole(&file);
        assert!(inspection.truncated);
        assert!(!inspection.playable);
        assert_eq!(
            inspection.note.as_deref(),
            Some(
                "WAV with GSM 6.10 audio (wav49) does not play in browsers; convert to PCM or MP3; the file ends before its header says (1.0 of 2.0 s)"
            )
        );
    }

    #[test]
    fn adpcm_wav_does_not_play() {
        let file = wav_with(&[fmt_chunk(WAVE_IMA_ADPCM, 4, 4055, 256)], 4055, 4055);
        let inspection = whole(&file);
        assert!(!inspection.playable);
        let note = inspection.note.expect("a note");
        assert!(note.contains("IMA ADPCM"), "{note}");
    }

    #[test]
    fn unknown_wav_codec_does_not_play() {
        let file = wav_with(&[fmt_chunk(0x1234, 8, 8000, 1)], 8000, 8000);
        let inspection = whole(&file);
        assert!(!inspection.playable);
        let note = inspection.note.expect("a note");
        assert!(note.contains("0x1234"), "{note}");
    }

    #[test]
    fn telephony_and_float_wav_play() {
        for (tag, bits, byte_rate) in [
            (WAVE_ALAW, 8, 8000),
            (WAVE_MULAW, 8, 8000),
            (WAVE_FLOAT, 32, 32_000),
            (WAVE_PCM, 8, 8000),
            (WAVE_PCM, 24, 24_000),
            (WAVE_PCM, 32, 32_000),
        ] {
            let file = wav_with(&[fmt_chunk(tag, bits, byte_rate, 1)], byte_rate, byte_rate as usize);
            let inspection = whole(&file);
            assert!(inspection.playable, "tag {tag} bits {bits}");
            assert_close(inspection.duration_s, 1.0);
        }
    }

    #[test]
    fn odd_pcm_depth_does_not_play() {
        let file = wav_with(&[fmt_chunk(WAVE_PCM, 12, 12_000, 2)], 12_000, 12_000);
        assert!(!whole(&file).playable);
    }

    #[test]
    fn extensible_wav_uses_its_sub_format() {
        let extensible = |sub_format: u16| {
            let mut chunk = Vec::new();
            chunk.extend_from_slice(b"fmt ");
            chunk.extend_from_slice(&40u32.to_le_bytes());
            chunk.extend_from_slice(&WAVE_EXTENSIBLE.to_le_bytes());
            chunk.extend_from_slice(&1u16.to_le_bytes());
            chunk.extend_from_slice(&8000u32.to_le_bytes());
            chunk.extend_from_slice(&16_000u32.to_le_bytes());
            chunk.extend_from_slice(&2u16.to_le_bytes());
            chunk.extend_from_slice(&16u16.to_le_bytes());
            chunk.extend_from_slice(&22u16.to_le_bytes());
            chunk.extend_from_slice(&16u16.to_le_bytes());
            chunk.extend_from_slice(&4u32.to_le_bytes());
            chunk.extend_from_slice(&sub_format.to_le_bytes());
            chunk.extend_from_slice(&[0; 14]);
            chunk
        };
        let pcm = wav_with(&[extensible(WAVE_PCM)], 16_000, 16_000);
        let inspection = whole(&pcm);
        assert!(inspection.playable);
        assert_close(inspection.duration_s, 1.0);
        let adpcm = wav_with(&[extensible(WAVE_MS_ADPCM)], 16_000, 16_000);
        assert!(!whole(&adpcm).playable);
    }

    #[test]
    fn walks_past_other_chunks_with_padding() {
        let mut list = Vec::new();
        list.extend_from_slice(b"LIST");
        list.extend_from_slice(&3u32.to_le_bytes());
        list.extend_from_slice(b"abc\0");
        let file = wav_with(&[list, fmt_chunk(WAVE_PCM, 16, 16_000, 2)], 8_000, 8_000);
        let inspection = whole(&file);
        assert_close(inspection.duration_s, 0.5);
        assert!(inspection.playable);
    }

    #[test]
    fn wav_chunks_beyond_the_head() {
        let mut big = Vec::new();
        big.extend_from_slice(b"LIST");
        big.extend_from_slice(&100_000u32.to_le_bytes());
        big.resize(8 + 100_000, b' ');
        let file = wav_with(&[big, fmt_chunk(WAVE_PCM, 16, 16_000, 2)], 16_000, 16_000);
        let inspection = inspect(&file[..HEAD_BYTES], file.len() as u64).expect("recognised");
        assert_eq!(inspection.format, AudioFormat::Wav);
        assert_eq!(inspection.duration_s, None);
        assert!(inspection.playable);
        assert!(!inspection.truncated);
        assert_eq!(inspection.note, None);
    }

    #[test]
    fn bare_wav_header() {
        let mut file = Vec::new();
        file.extend_from_slice(b"RIFF");
        file.extend_from_slice(&4u32.to_le_bytes());
        file.extend_from_slice(b"WAVE");
        let inspection = whole(&file);
        assert_eq!(inspection.format, AudioFormat::Wav);
        assert_eq!(inspection.duration_s, None);
        assert!(inspection.playable);
        assert!(!inspection.truncated);
    }

    #[test]
    fn fmt_chunk_cut_short() {
        let mut file = Vec::new();
        file.extend_from_slice(b"RIFF");
        file.extend_from_slice(&100u32.to_le_bytes());
        file.extend_from_slice(b"WAVE");
        file.extend_from_slice(&fmt_chunk(WAVE_PCM, 16, 16_000, 2)[..14]);
        let inspection = inspect(&file, 200).expect("recognised");
        assert_eq!(inspection.duration_s, None);
        assert!(inspection.playable);
    }

    #[test]
    fn zero_byte_rate_gives_no_duration() {
        let file = wav_with(&[fmt_chunk(WAVE_PCM, 16, 0, 2)], 16_000, 8_000);
        let inspection = whole(&file);
        assert_eq!(inspection.duration_s, None);
        assert!(inspection.truncated);
        let note = inspection.note.expect("a note");
        assert!(note.contains("8000 of 16000 bytes"), "{note}");
    }

    fn with_size(mut head: Vec<u8>, size: usize) -> Vec<u8> {
        head.resize(size, 0x55);
        head
    }

    #[test]
    fn bare_mp3_frame() {
        let file = with_size(vec![0xFF, 0xFB, 0x90, 0x64], 1000);
        let inspection = inspect(&file, 160_000).expect("recognised");
        assert_eq!(inspection.format, AudioFormat::Mp3);
        assert_close(inspection.duration_s, 10.0);
        assert!(!inspection.truncated);
        assert!(inspection.playable);
        assert_eq!(inspection.note, None);
    }

    #[test]
    fn mpeg2_layer3_bitrate() {
        // MPEG-2 layer III, bitrate index 8: 64 kbps.
        let file = with_size(vec![0xFF, 0xF3, 0x84, 0x64], 100);
        let inspection = inspect(&file, 80_000).expect("recognised");
        assert_close(inspection.duration_s, 10.0);
        // MPEG-2.5 shares MPEG-2's table.
        let file = with_size(vec![0xFF, 0xE3, 0x84, 0x64], 100);
        assert_close(inspect(&file, 80_000).expect("recognised").duration_s, 10.0);
    }

    #[test]
    fn mp3_without_usable_bitrate() {
        for header in [
            [0xFFu8, 0xFB, 0x00, 0x64],
            [0xFF, 0xFB, 0xF0, 0x64],
            [0xFF, 0xFD, 0x90, 0x64],
        ] {
            let inspection = inspect(&header, 10_000).expect("recognised");
            assert_eq!(inspection.format, AudioFormat::Mp3);
            assert_eq!(inspection.duration_s, None, "{header:02X?}");
        }
    }

    #[test]
    fn mp3_with_id3_tag() {
        let mut head = b"ID3\x03\x00\x00\x00\x00\x02\x01".to_vec();
        head.resize(10 + 257, b'T');
        head.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        let head = with_size(head, 2000);
        let inspection = inspect(&head, 267 + 128_000).expect("recognised");
        assert_eq!(inspection.format, AudioFormat::Mp3);
        assert_close(inspection.duration_s, 8.0);
    }

    #[test]
    fn mp3_with_id3_footer_and_padding() {
        let mut head = b"ID3\x04\x00\x10\x00\x00\x00\x10".to_vec();
        head.resize(10 + 16 + 10, b'T');
        head.resize(36 + 4, 0);
        head.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        let head = with_size(head, 500);
        let inspection = inspect(&head, 40 + 16_000).expect("recognised");
        assert_close(inspection.duration_s, 1.0);
    }

    #[test]
    fn id3_tag_beyond_the_head() {
        let mut head = b"ID3\x03\x00\x00\x00\x08\x00\x00".to_vec();
        head.resize(HEAD_BYTES, b'T');
        let inspection = inspect(&head, 1_000_000).expect("recognised");
        assert_eq!(inspection.format, AudioFormat::Mp3);
        assert_eq!(inspection.duration_s, None);
        assert!(inspection.playable);
        let cut = inspect(b"ID3\x03", 4).expect("recognised");
        assert_eq!(cut.format, AudioFormat::Mp3);
    }

    /// An Ogg file's first page: a 27-byte header, a one-entry segment table, the payload.
    fn ogg_page(payload: &[u8]) -> Vec<u8> {
        let mut page = b"OggS".to_vec();
        page.extend_from_slice(&[0, 2]);
        page.extend_from_slice(&[0; 8 + 4 + 4 + 4]);
        page.push(1);
        page.push(payload.len() as u8);
        page.extend_from_slice(payload);
        page
    }

    #[test]
    fn ogg() {
        for payload in [
            &b"OpusHead\x01\x01"[..],
            &b"\x01vorbis\x00\x00"[..],
            &b"\x7FFLAC"[..],
            &b"unknown"[..],
        ] {
            let file = ogg_page(payload);
            let inspection = whole(&file);
            assert_eq!(inspection.format, AudioFormat::Ogg);
            assert!(inspection.playable);
            assert_eq!(inspection.duration_s, None);
            assert!(!inspection.truncated);
            assert_eq!(inspection.note, None);
        }
        let speex = whole(&ogg_page(b"Speex   1.2"));
        assert!(!speex.playable);
        assert!(speex.note.is_some());
        let cut = whole(b"OggS");
        assert_eq!(cut.format, AudioFormat::Ogg);
        assert!(cut.playable);
    }

    #[test]
    fn not_audio() {
        assert_eq!(inspect(b"", 0), Err(NotAudio::Empty));
        assert_eq!(inspect(b"", 1000), Err(NotAudio::Empty));
        assert_eq!(inspect(b"hello, world\n", 13), Err(NotAudio::LooksLike("text")));
        assert_eq!(
            inspect(b"  <!doctype html><html>", 23),
            Err(NotAudio::LooksLike("an HTML or XML page"))
        );
        assert_eq!(
            inspect(b"RIFF\x04\x00\x00\x00AVI ", 12),
            Err(NotAudio::LooksLike("a RIFF file that is not WAVE audio"))
        );
        assert_eq!(
            inspect(b"RIFF", 4),
            Err(NotAudio::LooksLike("a RIFF file that is not WAVE audio"))
        );
        assert_eq!(inspect(b"fLaC\x00\x00", 6), Err(NotAudio::LooksLike("FLAC audio")));
        assert_eq!(inspect(b"%PDF-1.7", 8), Err(NotAudio::LooksLike("a PDF document")));
        assert_eq!(
            inspect(b"\xFF\xFEh\x00i\x00", 6),
            Err(NotAudio::LooksLike("UTF-16 text"))
        );
        assert_eq!(inspect(&[0x00, 0x01, 0x02, 0x03], 4), Err(NotAudio::Unknown));
        // A frame sync with too few bytes for a header.
        assert_eq!(inspect(&[0xFF, 0xFB], 2), Err(NotAudio::Unknown));
        // A frame sync with a reserved version.
        assert_eq!(inspect(&[0xFF, 0xEB, 0x90, 0x64], 4), Err(NotAudio::Unknown));
    }

    #[test]
    fn text_cut_mid_character_is_still_text() {
        let text = "répondeur".as_bytes();
        assert_eq!(inspect(&text[..2], 100), Err(NotAudio::LooksLike("text")));
    }

    #[test]
    fn not_audio_messages() {
        assert_eq!(NotAudio::Empty.to_string(), "the file is empty");
        assert_eq!(
            NotAudio::Unknown.to_string(),
            "the file is not a WAV, MP3 or Ogg recording"
        );
        assert_eq!(
            NotAudio::LooksLike("a PDF document").to_string(),
            "the file is not a WAV, MP3 or Ogg recording; it looks like a PDF document"
        );
    }

    #[test]
    fn format_names() {
        assert_eq!(AudioFormat::Wav.content_type(), "audio/wav");
        assert_eq!(AudioFormat::Mp3.content_type(), "audio/mpeg");
        assert_eq!(AudioFormat::Ogg.content_type(), "audio/ogg");
        assert_eq!(AudioFormat::Wav.name(), "WAV");
        assert_eq!(AudioFormat::Mp3.name(), "MP3");
        assert_eq!(AudioFormat::Ogg.name(), "Ogg");
    }
}
