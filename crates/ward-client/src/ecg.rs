//! ECG recordings decoded from attachment bytes for the app's viewer: DICOM 12-lead waveform
//! files and HL7 aECG XML. The bytes come from another device and are untrusted, so every length
//! is checked against what is there, nesting is bounded, and nothing here panics.
//!
//! Only what the viewer draws is kept: each lead's label and its samples in microvolts, and the
//! sampling rate. The viewer lays them on standard paper (25 mm/s, 10 mm/mV).

use quick_xml::events::Event;
use quick_xml::Reader;

/// One recording: leads sampled together at one rate.
#[derive(Debug, Clone, PartialEq)]
pub struct EcgRecording {
    /// Samples per second, per lead.
    pub sample_rate_hz: u32,
    /// The leads in the order the file gives them.
    pub leads: Vec<EcgLead>,
}

/// One lead's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct EcgLead {
    /// The usual short name: "I", "aVR", "V1".
    pub label: String,
    /// Microvolts, one per sample.
    pub microvolts: Vec<i32>,
}

/// Why a file could not be shown as an ECG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcgError {
    /// Neither a DICOM file nor HL7 aECG XML.
    #[error("this file is not an ECG that Ward can show (DICOM waveform or HL7 aECG)")]
    NotAnEcg,
    /// A DICOM encoding Ward does not read (big endian, deflated).
    #[error("this DICOM file uses an encoding Ward cannot read")]
    UnsupportedEncoding,
    /// The structure is cut or contradicts itself.
    #[error("this ECG file is damaged")]
    Damaged,
}

/// Leads per recording: 12 standard leads, plus room for extra channels some carts record.
const MAX_LEADS: usize = 64;
/// Samples per lead: 10 minutes at 1 kHz, far past any diagnostic ECG.
const MAX_SAMPLES: usize = 600_000;
/// Sequences nest a few levels deep in a waveform file; deeper is an attack, not an ECG.
const MAX_DEPTH: usize = 8;
/// Elements in one file, to bound the work a hostile file can cause.
const MAX_ELEMENTS: usize = 200_000;

/// Decodes `bytes` as a DICOM waveform file or HL7 aECG XML, whichever it is.
pub fn decode(bytes: &[u8]) -> Result<EcgRecording, EcgError> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        return dicom::decode(&bytes[132..]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| EcgError::NotAnEcg)?;
    if text.contains("AnnotatedECG") {
        return aecg::decode(text);
    }
    Err(EcgError::NotAnEcg)
}

/// The short name of a lead from a DICOM code meaning or an aECG code: "Lead I (Einthoven)" and
/// "MDC_ECG_LEAD_I" are both "I"; "MDC_ECG_LEAD_AVR" is "aVR".
fn short_label(raw: &str) -> String {
    let raw = raw.trim();
    let raw = raw.strip_prefix("MDC_ECG_LEAD_").unwrap_or(raw);
    let raw = raw.strip_prefix("Lead ").unwrap_or(raw);
    let raw = raw.split(" (").next().unwrap_or(raw).trim();
    match raw.to_ascii_uppercase().as_str() {
        "AVR" => "aVR".to_owned(),
        "AVL" => "aVL".to_owned(),
        "AVF" => "aVF".to_owned(),
        _ => raw.chars().take(16).collect(),
    }
}

/// Microvolts in one unit, for the units ECG files use.
fn microvolts_per(unit: &str) -> Option<f64> {
    match unit.trim() {
        "uV" | "µV" => Some(1.0),
        "mV" => Some(1_000.0),
        "V" => Some(1_000_000.0),
        "nV" => Some(0.001),
        _ => None,
    }
}

fn to_microvolts(value: f64) -> Result<i32, EcgError> {
    if !value.is_finite() || value.abs() > f64::from(i32::MAX) {
        return Err(EcgError::Damaged);
    }
    // Rounded to a whole microvolt: a thousandth of a paper millimetre.
    #[allow(clippy::cast_possible_truncation)]
    Ok(value.round() as i32)
}

mod dicom {
    use super::{
        microvolts_per, short_label, to_microvolts, EcgError, EcgLead, EcgRecording, MAX_DEPTH,
        MAX_ELEMENTS, MAX_LEADS, MAX_SAMPLES,
    };

    const EXPLICIT_LITTLE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LITTLE: &str = "1.2.840.10008.1.2";

    const TRANSFER_SYNTAX: u32 = 0x0002_0010;
    const WAVEFORM_SEQUENCE: u32 = 0x5400_0100;
    const CHANNEL_COUNT: u32 = 0x003A_0005;
    const SAMPLE_COUNT: u32 = 0x003A_0010;
    const SAMPLING_FREQUENCY: u32 = 0x003A_001A;
    const MULTIPLEX_LABEL: u32 = 0x003A_0020;
    const CHANNEL_DEFINITIONS: u32 = 0x003A_0200;
    const CHANNEL_LABEL: u32 = 0x003A_0203;
    const CHANNEL_SOURCE: u32 = 0x003A_0208;
    const CHANNEL_SENSITIVITY: u32 = 0x003A_0210;
    const SENSITIVITY_UNITS: u32 = 0x003A_0211;
    const SENSITIVITY_CORRECTION: u32 = 0x003A_0212;
    const CHANNEL_BASELINE: u32 = 0x003A_0213;
    const CODE_VALUE: u32 = 0x0008_0100;
    const CODE_MEANING: u32 = 0x0008_0104;
    const BITS_ALLOCATED: u32 = 0x5400_1004;
    const SAMPLE_INTERPRETATION: u32 = 0x5400_1006;
    const WAVEFORM_DATA: u32 = 0x5400_1010;
    const ITEM: u32 = 0xFFFE_E000;
    const ITEM_END: u32 = 0xFFFE_E00D;
    const SEQUENCE_END: u32 = 0xFFFE_E0DD;
    const UNDEFINED: u32 = 0xFFFF_FFFF;

    /// Sequences an implicit-VR file gives no VR for, so they are known by tag.
    const SEQUENCE_TAGS: [u32; 4] = [
        WAVEFORM_SEQUENCE,
        CHANNEL_DEFINITIONS,
        CHANNEL_SOURCE,
        SENSITIVITY_UNITS,
    ];

    enum Value<'a> {
        Bytes(&'a [u8]),
        Items(Vec<Vec<Element<'a>>>),
    }

    struct Element<'a> {
        tag: u32,
        value: Value<'a>,
    }

    struct Parser<'a> {
        bytes: &'a [u8],
        at: usize,
        explicit: bool,
        elements: usize,
    }

    impl<'a> Parser<'a> {
        fn take(&mut self, len: usize) -> Result<&'a [u8], EcgError> {
            let end = self.at.checked_add(len).ok_or(EcgError::Damaged)?;
            let slice = self.bytes.get(self.at..end).ok_or(EcgError::Damaged)?;
            self.at = end;
            Ok(slice)
        }

        fn u16(&mut self) -> Result<u16, EcgError> {
            let bytes = self.take(2)?;
            Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
        }

        fn u32(&mut self) -> Result<u32, EcgError> {
            let bytes = self.take(4)?;
            Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }

        fn tag(&mut self) -> Result<u32, EcgError> {
            let group = self.u16()?;
            let element = self.u16()?;
            Ok(u32::from(group) << 16 | u32::from(element))
        }

        /// Elements until `end` (a byte offset), or until a delimiter with `end` unknown.
        fn elements(
            &mut self,
            end: Option<usize>,
            depth: usize,
        ) -> Result<Vec<Element<'a>>, EcgError> {
            if depth > MAX_DEPTH {
                return Err(EcgError::Damaged);
            }
            let mut found = Vec::new();
            loop {
                match end {
                    Some(end) if self.at >= end => return Ok(found),
                    None if self.at >= self.bytes.len() => return Ok(found),
                    _ => {}
                }
                let tag = self.tag()?;
                if tag == ITEM_END || tag == SEQUENCE_END {
                    self.u32()?;
                    return Ok(found);
                }
                self.elements += 1;
                if self.elements > MAX_ELEMENTS {
                    return Err(EcgError::Damaged);
                }
                let (sequence, len) = self.header(tag)?;
                let value = if sequence || len == UNDEFINED {
                    Value::Items(self.items(len, depth + 1)?)
                } else {
                    Value::Bytes(self.take(len as usize)?)
                };
                found.push(Element { tag, value });
            }
        }

        /// The VR-dependent rest of an element header: whether it is a sequence, and its length.
        fn header(&mut self, tag: u32) -> Result<(bool, u32), EcgError> {
            // The file meta group is always explicit, whatever the rest uses.
            if self.explicit || tag >> 16 == 0x0002 {
                let vr = self.take(2)?;
                let long = matches!(
                    vr,
                    b"OB"
                        | b"OW"
                        | b"OF"
                        | b"SQ"
                        | b"UT"
                        | b"UN"
                        | b"OD"
                        | b"OL"
                        | b"OV"
                        | b"SV"
                        | b"UV"
                        | b"UC"
                        | b"UR"
                );
                let len = if long {
                    self.take(2)?;
                    self.u32()?
                } else {
                    u32::from(self.u16()?)
                };
                Ok((vr == b"SQ", len))
            } else {
                let len = self.u32()?;
                Ok((SEQUENCE_TAGS.contains(&tag), len))
            }
        }

        fn items(&mut self, len: u32, depth: usize) -> Result<Vec<Vec<Element<'a>>>, EcgError> {
            let end = if len == UNDEFINED {
                None
            } else {
                Some(self.at.checked_add(len as usize).ok_or(EcgError::Damaged)?)
            };
            if end.is_some_and(|end| end > self.bytes.len()) {
                return Err(EcgError::Damaged);
            }
            let mut items = Vec::new();
            loop {
                match end {
                    Some(end) if self.at >= end => return Ok(items),
                    _ => {}
                }
                let tag = self.tag()?;
                let item_len = self.u32()?;
                match tag {
                    SEQUENCE_END => return Ok(items),
                    ITEM if item_len == UNDEFINED => items.push(self.elements(None, depth)?),
                    ITEM => {
                        let item_end = self
                            .at
                            .checked_add(item_len as usize)
                            .ok_or(EcgError::Damaged)?;
                        if item_end > self.bytes.len() {
                            return Err(EcgError::Damaged);
                        }
                        items.push(self.elements(Some(item_end), depth)?);
                        self.at = item_end;
                    }
                    _ => return Err(EcgError::Damaged),
                }
            }
        }
    }

    fn find<'b, 'a>(elements: &'b [Element<'a>], tag: u32) -> Option<&'b Value<'a>> {
        elements
            .iter()
            .find(|element| element.tag == tag)
            .map(|element| &element.value)
    }

    fn bytes<'a>(elements: &[Element<'a>], tag: u32) -> Option<&'a [u8]> {
        match find(elements, tag) {
            Some(Value::Bytes(bytes)) => Some(bytes),
            _ => None,
        }
    }

    fn items<'b, 'a>(elements: &'b [Element<'a>], tag: u32) -> &'b [Vec<Element<'a>>] {
        match find(elements, tag) {
            Some(Value::Items(items)) => items,
            _ => &[],
        }
    }

    fn text(elements: &[Element<'_>], tag: u32) -> Option<String> {
        let bytes = bytes(elements, tag)?;
        let text = String::from_utf8_lossy(bytes);
        let text =
            text.trim_matches(|character: char| character == '\0' || character.is_whitespace());
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// A decimal string; the first value when several are given.
    fn decimal(elements: &[Element<'_>], tag: u32) -> Option<f64> {
        text(elements, tag)?.split('\\').next()?.trim().parse().ok()
    }

    fn unsigned(elements: &[Element<'_>], tag: u32) -> Option<u32> {
        match bytes(elements, tag)? {
            [a, b] => Some(u32::from(u16::from_le_bytes([*a, *b]))),
            [a, b, c, d] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }

    pub(super) fn decode(body: &[u8]) -> Result<EcgRecording, EcgError> {
        // The meta group comes first and says how the rest is encoded.
        let mut parser = Parser {
            bytes: body,
            at: 0,
            explicit: true,
            elements: 0,
        };
        let mut meta_end = 0;
        let mut syntax = None;
        while parser.at + 4 <= body.len() && body[parser.at..parser.at + 2] == [0x02, 0x00] {
            let tag = parser.tag()?;
            let (_, len) = parser.header(tag)?;
            let value = parser.take(len as usize)?;
            if tag == TRANSFER_SYNTAX {
                syntax = Some(
                    String::from_utf8_lossy(value)
                        .trim_matches(|character: char| character == '\0' || character == ' ')
                        .to_owned(),
                );
            }
            meta_end = parser.at;
        }
        let explicit = match syntax.as_deref() {
            Some(EXPLICIT_LITTLE) => true,
            Some(IMPLICIT_LITTLE) | None => false,
            Some(_) => return Err(EcgError::UnsupportedEncoding),
        };
        let mut parser = Parser {
            bytes: body,
            at: meta_end,
            explicit,
            elements: 0,
        };
        let dataset = parser.elements(None, 0)?;
        let groups = items(&dataset, WAVEFORM_SEQUENCE);
        // The rhythm strip when the file labels one; otherwise the longest group.
        let chosen = groups
            .iter()
            .find(|group| {
                text(group, MULTIPLEX_LABEL)
                    .is_some_and(|label| label.eq_ignore_ascii_case("RHYTHM"))
            })
            .or_else(|| {
                groups
                    .iter()
                    .max_by_key(|group| unsigned(group, SAMPLE_COUNT).unwrap_or(0))
            })
            .ok_or(EcgError::NotAnEcg)?;
        recording(chosen)
    }

    fn recording(group: &[Element<'_>]) -> Result<EcgRecording, EcgError> {
        let channels = unsigned(group, CHANNEL_COUNT).ok_or(EcgError::Damaged)? as usize;
        let samples = unsigned(group, SAMPLE_COUNT).ok_or(EcgError::Damaged)? as usize;
        let rate = decimal(group, SAMPLING_FREQUENCY).ok_or(EcgError::Damaged)?;
        if channels == 0 || channels > MAX_LEADS || samples == 0 || samples > MAX_SAMPLES {
            return Err(EcgError::Damaged);
        }
        if !(1.0..=100_000.0).contains(&rate) {
            return Err(EcgError::Damaged);
        }
        let width = match unsigned(group, BITS_ALLOCATED) {
            Some(8) => 1,
            Some(16) => 2,
            _ => return Err(EcgError::UnsupportedEncoding),
        };
        let signed = match text(group, SAMPLE_INTERPRETATION).as_deref() {
            Some("SS" | "SB") => true,
            Some("US" | "UB") => false,
            _ => return Err(EcgError::UnsupportedEncoding),
        };
        let data = bytes(group, WAVEFORM_DATA).ok_or(EcgError::Damaged)?;
        if data.len() < channels * samples * width {
            return Err(EcgError::Damaged);
        }
        let definitions = items(group, CHANNEL_DEFINITIONS);
        let mut leads = Vec::with_capacity(channels);
        for channel in 0..channels {
            let definition = definitions.get(channel).map(Vec::as_slice).unwrap_or(&[]);
            let label = items(definition, CHANNEL_SOURCE)
                .first()
                .and_then(|source| text(source, CODE_MEANING))
                .or_else(|| text(definition, CHANNEL_LABEL))
                .map(|label| short_label(&label))
                .unwrap_or_else(|| format!("{}", channel + 1));
            let unit = items(definition, SENSITIVITY_UNITS)
                .first()
                .and_then(|unit| text(unit, CODE_VALUE))
                .unwrap_or_else(|| "uV".to_owned());
            let per_unit = microvolts_per(&unit).ok_or(EcgError::UnsupportedEncoding)?;
            let sensitivity = decimal(definition, CHANNEL_SENSITIVITY).unwrap_or(1.0);
            let correction = decimal(definition, SENSITIVITY_CORRECTION).unwrap_or(1.0);
            let baseline = decimal(definition, CHANNEL_BASELINE).unwrap_or(0.0);
            let mut microvolts = Vec::with_capacity(samples);
            for sample in 0..samples {
                let at = (sample * channels + channel) * width;
                let raw = match (width, signed) {
                    (1, true) => f64::from(data[at] as i8),
                    (1, false) => f64::from(data[at]),
                    (_, true) => f64::from(i16::from_le_bytes([data[at], data[at + 1]])),
                    (_, false) => f64::from(u16::from_le_bytes([data[at], data[at + 1]])),
                };
                microvolts.push(to_microvolts(
                    (raw * sensitivity * correction + baseline) * per_unit,
                )?);
            }
            leads.push(EcgLead { label, microvolts });
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let sample_rate_hz = rate.round() as u32;
        Ok(EcgRecording {
            sample_rate_hz,
            leads,
        })
    }
}

mod aecg {
    use super::{
        microvolts_per, short_label, to_microvolts, EcgError, EcgLead, EcgRecording, Event, Reader,
        MAX_DEPTH, MAX_ELEMENTS, MAX_LEADS, MAX_SAMPLES,
    };

    /// What one `<sequence>` held.
    #[derive(Default)]
    struct Sequence {
        code: String,
        increment: Option<(f64, String)>,
        origin: Option<(f64, String)>,
        scale: Option<(f64, String)>,
        digits: String,
    }

    pub(super) fn decode(text: &str) -> Result<EcgRecording, EcgError> {
        let mut reader = Reader::from_str(text);
        let mut path: Vec<String> = Vec::new();
        let mut sequences = Vec::new();
        let mut current: Option<Sequence> = None;
        let mut events = 0usize;
        loop {
            events += 1;
            if events > MAX_ELEMENTS * 4 {
                return Err(EcgError::Damaged);
            }
            let event = reader.read_event().map_err(|_| EcgError::Damaged)?;
            let (start, element) = match &event {
                Event::Start(element) => (true, element),
                Event::Empty(element) => (false, element),
                Event::End(_) => {
                    if path.pop().as_deref() == Some("sequence") {
                        sequences.extend(current.take());
                    }
                    continue;
                }
                Event::Text(content) => {
                    if path.last().map(String::as_str) == Some("digits") {
                        if let Some(sequence) = current.as_mut() {
                            // Digits are plain numbers; no entity can hide in them.
                            let content: &str = content;
                            sequence.digits.push_str(content);
                            sequence.digits.push(' ');
                        }
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let name = element.local_name().into_inner().to_owned();
            // Median beats and other derived data sit under <derivation>; the viewer shows the
            // rhythm as recorded.
            let derived = path.iter().any(|step| step == "derivation");
            if !derived {
                let attribute = |key: &str| -> Option<String> {
                    element
                        .attributes()
                        .flatten()
                        .find(|attribute| attribute.key.local_name().into_inner() == key)
                        // Codes, numbers and units: an entity in them makes them fail to parse.
                        .map(|attribute| attribute.value.into_owned())
                };
                let measured = || -> Option<(f64, String)> {
                    Some((attribute("value")?.trim().parse().ok()?, attribute("unit")?))
                };
                if name == "sequence" && start {
                    current = Some(Sequence::default());
                }
                if let Some(sequence) = current.as_mut() {
                    match name.as_str() {
                        "code" if path.last().map(String::as_str) == Some("sequence") => {
                            sequence.code = attribute("code").unwrap_or_default();
                        }
                        "increment" => sequence.increment = measured(),
                        "origin" => sequence.origin = measured(),
                        "scale" => sequence.scale = measured(),
                        _ => {}
                    }
                }
            }
            if start {
                if path.len() >= MAX_DEPTH * 4 {
                    return Err(EcgError::Damaged);
                }
                path.push(name);
            }
        }
        recording(sequences)
    }

    fn recording(sequences: Vec<Sequence>) -> Result<EcgRecording, EcgError> {
        let mut rate = None;
        let mut leads = Vec::new();
        for sequence in sequences {
            if sequence.code.starts_with("TIME_") {
                if rate.is_none() {
                    let (increment, unit) = sequence.increment.ok_or(EcgError::Damaged)?;
                    let seconds = match unit.as_str() {
                        "s" => increment,
                        "ms" => increment / 1_000.0,
                        _ => return Err(EcgError::UnsupportedEncoding),
                    };
                    if seconds.is_nan() || seconds <= 0.0 {
                        return Err(EcgError::Damaged);
                    }
                    rate = Some(1.0 / seconds);
                }
            } else if sequence.code.starts_with("MDC_ECG_LEAD_") {
                if leads.len() >= MAX_LEADS {
                    return Err(EcgError::Damaged);
                }
                let (origin, origin_unit) = sequence.origin.unwrap_or((0.0, "uV".to_owned()));
                let (scale, scale_unit) = sequence.scale.ok_or(EcgError::Damaged)?;
                let origin =
                    origin * microvolts_per(&origin_unit).ok_or(EcgError::UnsupportedEncoding)?;
                let scale =
                    scale * microvolts_per(&scale_unit).ok_or(EcgError::UnsupportedEncoding)?;
                let mut microvolts = Vec::new();
                for digit in sequence.digits.split_ascii_whitespace() {
                    if microvolts.len() >= MAX_SAMPLES {
                        return Err(EcgError::Damaged);
                    }
                    let digit: f64 = digit.parse().map_err(|_| EcgError::Damaged)?;
                    microvolts.push(to_microvolts(origin + scale * digit)?);
                }
                if microvolts.is_empty() {
                    return Err(EcgError::Damaged);
                }
                leads.push(EcgLead {
                    label: short_label(&sequence.code),
                    microvolts,
                });
            }
        }
        let rate = rate.ok_or(EcgError::NotAnEcg)?;
        if leads.is_empty() || !(1.0..=100_000.0).contains(&rate) {
            return Err(EcgError::NotAnEcg);
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let sample_rate_hz = rate.round() as u32;
        Ok(EcgRecording {
            sample_rate_hz,
            leads,
        })
    }
}
