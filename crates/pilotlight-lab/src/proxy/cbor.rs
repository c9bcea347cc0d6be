//! A small, complete CBOR (RFC 8949) codec for the data model Smithy RPC v2 CBOR uses.
//!
//! [`decode`] reads one data item — unsigned and negative integers, byte and text strings
//! (definite and indefinite length), arrays and maps (definite and indefinite length), tags
//! (tag 1, epoch seconds, becomes [`Value::Timestamp`]; others are kept as [`Value::Tag`]),
//! half/single/double floats, `false`, `true`, `null` and `undefined` — and rejects anything
//! else (other simple values, reserved argument sizes, a stray `break`, invalid UTF-8, trailing
//! bytes). [`encode`] writes the preferred (shortest) head for every length and integer and
//! always writes floats as doubles, which the SDK's decoder accepts for `float`, `double` and
//! timestamp members alike.
//!
//! Bounds: nesting deeper than [`MAX_DEPTH`] is refused; a declared length larger than the
//! bytes left is refused before anything is allocated, so a hostile header cannot make the
//! decoder reserve memory the input does not back.

/// Deepest nesting of arrays, maps and tags accepted (the SDK's own decoder stops at 128).
pub const MAX_DEPTH: usize = 128;

/// CBOR tag 1: a number of seconds since the Unix epoch.
const TAG_EPOCH: u64 = 1;
/// The `break` stop code that ends an indefinite-length item.
const BREAK: u8 = 0xff;

/// One CBOR data item.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major types 0 and 1: every CBOR integer, -2^64 ..= 2^64 - 1. [`encode`] writes values
    /// outside that range (only constructible by hand) as doubles.
    Integer(i128),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, entries in wire order (duplicates kept).
    Map(Vec<(Value, Value)>),
    /// Tag 1 around an integer or a float: seconds since the Unix epoch.
    Timestamp(f64),
    /// Any other tag and its content.
    Tag(u64, Box<Value>),
    /// Half, single or double precision; always encoded as a double.
    Float(f64),
    Bool(bool),
    Null,
    Undefined,
}

impl Value {
    /// A text value.
    pub fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    /// The value of `key` in a map with text keys (`None` for other values or missing keys).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why bytes are not one well-formed CBOR data item of the supported model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended inside an item.
    #[error("CBOR input ends early at byte {offset}")]
    Truncated { offset: usize },
    /// Bytes follow the single top-level item.
    #[error("{extra} byte(s) after the CBOR item, from byte {offset}")]
    TrailingBytes { offset: usize, extra: usize },
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep { offset: usize },
    /// A text string (or one of its chunks) is not UTF-8.
    #[error("CBOR text string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    /// Anything else that is not well-formed or not in the supported model.
    #[error("invalid CBOR at byte {offset}: {reason}")]
    Invalid { offset: usize, reason: &'static str },
}

/// Decodes exactly one data item from `bytes`.
///
/// # Errors
///
/// [`CborError`] when `bytes` is not exactly one well-formed item of the supported model.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.item(0)?;
    if reader.pos < bytes.len() {
        return Err(CborError::TrailingBytes {
            offset: reader.pos,
            extra: bytes.len() - reader.pos,
        });
    }
    Ok(value)
}

/// Encodes `value` (preferred serialization; floats as doubles).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

/// What an initial byte announces.
enum Arg {
    /// A definite argument: a value, a length or a tag number.
    Definite(u64),
    /// Additional information 31: indefinite length (major types 2–5) or `break` (7).
    Indefinite,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn invalid(&self, offset: usize, reason: &'static str) -> CborError {
        debug_assert!(offset <= self.bytes.len());
        CborError::Invalid { offset, reason }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(CborError::Truncated {
                offset: self.bytes.len(),
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, CborError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(CborError::Truncated { offset: self.pos })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The argument of an initial byte whose additional information is `info`.
    fn argument(&mut self, info: u8, at: usize) -> Result<Arg, CborError> {
        Ok(Arg::Definite(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            31 => return Ok(Arg::Indefinite),
            _ => return Err(self.invalid(at, "reserved additional information 28-30")),
        }))
    }

    /// A declared length, refused when the input cannot hold that many items of at least
    /// `min_item_bytes` each.
    fn length(&self, n: u64, min_item_bytes: usize, at: usize) -> Result<usize, CborError> {
        let left = self.bytes.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|n| n.checked_mul(min_item_bytes).is_some_and(|b| b <= left))
            .ok_or(CborError::Truncated {
                offset: self.bytes.len().max(at),
            })
    }

    /// Consumes a `break` if one is next.
    fn at_break(&mut self) -> Result<bool, CborError> {
        if self.peek()? == BREAK {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep { offset: at });
        }
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        if major == 7 {
            return self.simple_or_float(info, at);
        }
        let arg = self.argument(info, at)?;
        match (major, arg) {
            (0, Arg::Definite(n)) => Ok(Value::Integer(i128::from(n))),
            (1, Arg::Definite(n)) => Ok(Value::Integer(-1 - i128::from(n))),
            (2, arg) => Ok(Value::Bytes(self.string_bytes(2, arg, at)?)),
            (3, arg) => {
                let bytes = self.string_bytes(3, arg, at)?;
                String::from_utf8(bytes)
                    .map(Value::Text)
                    .map_err(|_| CborError::InvalidUtf8 { offset: at })
            }
            (4, Arg::Definite(n)) => {
                let n = self.length(n, 1, at)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            (4, Arg::Indefinite) => {
                let mut items = Vec::new();
                while !self.at_break()? {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            (5, Arg::Definite(n)) => {
                let n = self.length(n, 2, at)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            (5, Arg::Indefinite) => {
                let mut entries = Vec::new();
                while !self.at_break()? {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            (6, Arg::Definite(tag)) => {
                let content = self.item(depth + 1)?;
                if tag != TAG_EPOCH {
                    return Ok(Value::Tag(tag, Box::new(content)));
                }
                match content {
                    Value::Float(secs) => Ok(Value::Timestamp(secs)),
                    // Epoch seconds of any real date are far below f64's exact 2^53.
                    Value::Integer(secs) => Ok(Value::Timestamp(secs as f64)),
                    _ => Err(self.invalid(at, "tag 1 must wrap an integer or a float")),
                }
            }
            (0 | 1 | 6, Arg::Indefinite) => {
                Err(self.invalid(at, "indefinite length on an integer or tag"))
            }
            _ => Err(self.invalid(at, "unknown major type")),
        }
    }

    /// The bytes of a byte (major 2) or text (major 3) string, joining the chunks of an
    /// indefinite-length one (each chunk must be a definite string of the same major type;
    /// a text chunk must be UTF-8 on its own).
    fn string_bytes(&mut self, major: u8, arg: Arg, at: usize) -> Result<Vec<u8>, CborError> {
        match arg {
            Arg::Definite(n) => {
                let n = self.length(n, 1, at)?;
                Ok(self.take(n)?.to_vec())
            }
            Arg::Indefinite => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let chunk_at = self.pos;
                    let initial = self.byte()?;
                    if initial >> 5 != major {
                        return Err(self.invalid(chunk_at, "string chunk of another major type"));
                    }
                    let Arg::Definite(n) = self.argument(initial & 0x1f, chunk_at)? else {
                        return Err(self.invalid(chunk_at, "nested indefinite-length string"));
                    };
                    let n = usize::try_from(n).map_err(|_| CborError::Truncated {
                        offset: self.bytes.len(),
                    })?;
                    let chunk = self.take(n)?;
                    if major == 3 && std::str::from_utf8(chunk).is_err() {
                        return Err(CborError::InvalidUtf8 { offset: chunk_at });
                    }
                    out.extend_from_slice(chunk);
                }
                Ok(out)
            }
        }
    }

    fn simple_or_float(&mut self, info: u8, at: usize) -> Result<Value, CborError> {
        match info {
            20 => Ok(Value::Bool(false)),
            21 => Ok(Value::Bool(true)),
            22 => Ok(Value::Null),
            23 => Ok(Value::Undefined),
            25 => Ok(Value::Float(half_to_f64(u16::from_be_bytes(self.array()?)))),
            26 => Ok(Value::Float(f64::from(f32::from_be_bytes(self.array()?)))),
            27 => Ok(Value::Float(f64::from_be_bytes(self.array()?))),
            31 => Err(self.invalid(at, "break outside an indefinite-length item")),
            24 => Err(self.invalid(at, "unassigned one-byte simple value")),
            _ => Err(self.invalid(at, "unassigned simple value")),
        }
    }
}

/// IEEE 754 binary16 to f64 (subnormals, infinities and NaN included).
fn half_to_f64(half: u16) -> f64 {
    let sign = if half & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x03ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    };
    sign * magnitude
}

/// Appends a head with the shortest argument encoding.
fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if let Ok(small) = u8::try_from(arg) {
        if small < 24 {
            out.push(m | small);
        } else {
            out.push(m | 24);
            out.push(small);
        }
    } else if let Ok(a) = u16::try_from(arg) {
        out.push(m | 25);
        out.extend_from_slice(&a.to_be_bytes());
    } else if let Ok(a) = u32::try_from(arg) {
        out.push(m | 26);
        out.extend_from_slice(&a.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// A length as a head argument (lossless: usize is at most 64 bits on supported targets).
fn len_arg(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn double(out: &mut Vec<u8>, f: f64) {
    out.push(0xfb);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Integer(i) => {
            if let Ok(n) = u64::try_from(*i) {
                head(out, 0, n);
            } else if let Ok(n) = u64::try_from(-1 - *i) {
                head(out, 1, n);
            } else {
                // Out of CBOR's integer range: the nearest double.
                double(out, *i as f64);
            }
        }
        Value::Bytes(b) => {
            head(out, 2, len_arg(b.len()));
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            head(out, 3, len_arg(t.len()));
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, len_arg(items.len()));
            for item in items {
                write(out, item);
            }
        }
        Value::Map(entries) => {
            head(out, 5, len_arg(entries.len()));
            for (k, v) in entries {
                write(out, k);
                write(out, v);
            }
        }
        Value::Timestamp(secs) => {
            head(out, 6, TAG_EPOCH);
            double(out, *secs);
        }
        Value::Tag(tag, content) => {
            head(out, 6, *tag);
            write(out, content);
        }
        Value::Float(f) => double(out, *f),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        Value::Undefined => out.push(0xf7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn d(s: &str) -> Value {
        decode(&hex(s)).expect("decodes")
    }

    #[test]
    fn integers_of_every_width_and_sign() {
        // RFC 8949 appendix A.
        assert_eq!(d("00"), Value::Integer(0));
        assert_eq!(d("17"), Value::Integer(23));
        assert_eq!(d("1818"), Value::Integer(24));
        assert_eq!(d("1903e8"), Value::Integer(1000));
        assert_eq!(d("1a000f4240"), Value::Integer(1_000_000));
        assert_eq!(
            d("1bffffffffffffffff"),
            Value::Integer(18_446_744_073_709_551_615)
        );
        assert_eq!(d("20"), Value::Integer(-1));
        assert_eq!(d("3863"), Value::Integer(-100));
        assert_eq!(
            d("3bffffffffffffffff"),
            Value::Integer(-18_446_744_073_709_551_616)
        );
        for (n, wire) in [
            (0_i128, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65_536, "1a00010000"),
            (4_294_967_296, "1b0000000100000000"),
            (-24, "37"),
            (-25, "3818"),
            (-1000, "3903e7"),
        ] {
            assert_eq!(encode(&Value::Integer(n)), hex(wire), "{n}");
            assert_eq!(d(wire), Value::Integer(n));
        }
    }

    #[test]
    fn floats_half_single_double() {
        assert_eq!(d("f93c00"), Value::Float(1.0));
        assert_eq!(d("f9c400"), Value::Float(-4.0));
        assert_eq!(d("f97bff"), Value::Float(65504.0));
        assert_eq!(d("f90001"), Value::Float(5.960_464_477_539_063e-8));
        assert_eq!(d("f90400"), Value::Float(6.103_515_625e-5));
        assert_eq!(d("f97c00"), Value::Float(f64::INFINITY));
        assert_eq!(d("f9fc00"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(d("f97e00"), Value::Float(f) if f.is_nan()));
        assert_eq!(d("fa47c35000"), Value::Float(100_000.0));
        assert_eq!(d("fa7f7fffff"), Value::Float(f64::from(f32::MAX)));
        assert_eq!(d("fb3ff199999999999a"), Value::Float(1.1));
        assert_eq!(encode(&Value::Float(1.1)), hex("fb3ff199999999999a"));
        assert_eq!(encode(&Value::Float(1.0)), hex("fb3ff0000000000000"));
    }

    #[test]
    fn simple_values() {
        assert_eq!(d("f4"), Value::Bool(false));
        assert_eq!(d("f5"), Value::Bool(true));
        assert_eq!(d("f6"), Value::Null);
        assert_eq!(d("f7"), Value::Undefined);
        for v in [
            Value::Bool(false),
            Value::Bool(true),
            Value::Null,
            Value::Undefined,
        ] {
            assert_eq!(decode(&encode(&v)), Ok(v));
        }
    }

    #[test]
    fn strings_definite_and_indefinite() {
        assert_eq!(d("60"), Value::text(""));
        assert_eq!(d("6449455446"), Value::text("IETF"));
        assert_eq!(d("62c3bc"), Value::text("\u{fc}"));
        assert_eq!(d("4401020304"), Value::Bytes(vec![1, 2, 3, 4]));
        assert_eq!(d("5f42010243030405ff"), Value::Bytes(vec![1, 2, 3, 4, 5]));
        assert_eq!(d("7f657374726561646d696e67ff"), Value::text("streaming"));
        assert_eq!(d("7fff"), Value::text(""));
        let long = "x".repeat(300);
        let wire = encode(&Value::text(&long));
        assert_eq!(&wire[..3], &[0x79, 0x01, 0x2c]);
        assert_eq!(decode(&wire), Ok(Value::Text(long)));
    }

    #[test]
    fn arrays_and_maps_definite_and_indefinite() {
        let nested = Value::Array(vec![
            Value::Integer(1),
            Value::Array(vec![Value::Integer(2), Value::Integer(3)]),
            Value::Array(vec![Value::Integer(4), Value::Integer(5)]),
        ]);
        assert_eq!(d("8301820203820405"), nested);
        assert_eq!(d("9f018202039f0405ffff"), nested);
        assert_eq!(d("83018202039f0405ff"), nested);
        assert_eq!(encode(&nested), hex("8301820203820405"));
        let map = d("a26161016162820203");
        assert_eq!(map.get("a"), Some(&Value::Integer(1)));
        assert_eq!(
            map.get("b"),
            Some(&Value::Array(vec![Value::Integer(2), Value::Integer(3)]))
        );
        assert_eq!(map.get("c"), None);
        assert_eq!(d("bf61610161629f0203ffff"), map);
        assert_eq!(encode(&map), hex("a26161016162820203"));
        // Non-text keys are data too.
        assert_eq!(
            d("a10102"),
            Value::Map(vec![(Value::Integer(1), Value::Integer(2))])
        );
    }

    #[test]
    fn tag_one_is_a_timestamp_other_tags_are_kept() {
        assert_eq!(d("c11a514b67b0"), Value::Timestamp(1_363_896_240.0));
        assert_eq!(d("c1fb41d452d9ec200000"), Value::Timestamp(1_363_896_240.5));
        assert_eq!(
            encode(&Value::Timestamp(1_363_896_240.5)),
            hex("c1fb41d452d9ec200000")
        );
        assert_eq!(
            d("c074323031332d30332d32315432303a30343a30305a"),
            Value::Tag(0, Box::new(Value::text("2013-03-21T20:04:00Z")))
        );
        assert_eq!(
            d("c249010000000000000000"),
            Value::Tag(2, Box::new(Value::Bytes(hex("010000000000000000"))))
        );
        assert!(matches!(
            decode(&hex("c16161")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
    }

    #[test]
    fn the_sdk_shape_round_trips() {
        // What aws-sdk-cloudwatch sends for PutMetricData: an indefinite map holding a
        // definite array of indefinite maps, a tag-1 double timestamp and double values.
        let wire = hex(concat!(
            "bf694e616d657370616365674157532f4543326a4d65747269634461746181bf6a4d6574",
            "7269634e616d656e4350555574696c697a6174696f6e6954696d657374616d70c1fb41da",
            "492e3f4000006556616c7565fb4055e00000000000ffff",
        ));
        let v = decode(&wire).expect("decodes");
        assert_eq!(v.get("Namespace"), Some(&Value::text("AWS/EC2")));
        let Some(Value::Array(data)) = v.get("MetricData") else {
            panic!("MetricData is an array: {v:?}");
        };
        assert_eq!(
            data[0].get("Timestamp"),
            Some(&Value::Timestamp(1_764_014_333.0))
        );
        assert_eq!(data[0].get("Value"), Some(&Value::Float(87.5)));
        let again = decode(&encode(&v)).expect("re-decodes");
        assert_eq!(again, v);
    }

    #[test]
    fn malformed_input_is_refused_with_its_offset() {
        assert_eq!(decode(&[]), Err(CborError::Truncated { offset: 0 }));
        assert_eq!(
            decode(&hex("19 03")),
            Err(CborError::Truncated { offset: 2 })
        );
        assert_eq!(
            decode(&hex("83 01 02")),
            Err(CborError::Truncated { offset: 3 })
        );
        assert!(matches!(
            decode(&hex("01 02")),
            Err(CborError::TrailingBytes {
                offset: 1,
                extra: 1
            })
        ));
        assert!(matches!(
            decode(&hex("1c")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            decode(&hex("ff")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            decode(&hex("f0")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            decode(&hex("f818")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            decode(&hex("1f")),
            Err(CborError::Invalid { offset: 0, .. })
        ));
        assert_eq!(
            decode(&hex("62 c3 28")),
            Err(CborError::InvalidUtf8 { offset: 0 })
        );
        // A chunk of an indefinite text string must be text, and UTF-8 by itself.
        assert!(matches!(
            decode(&hex("7f 41 61 ff")),
            Err(CborError::Invalid { offset: 1, .. })
        ));
        assert_eq!(
            decode(&hex("7f 61 c3 61 bc ff")),
            Err(CborError::InvalidUtf8 { offset: 1 })
        );
        assert!(matches!(
            decode(&hex("7f 7f ff ff")),
            Err(CborError::Invalid { offset: 1, .. })
        ));
        // An indefinite array never closed.
        assert_eq!(
            decode(&hex("9f 01")),
            Err(CborError::Truncated { offset: 2 })
        );
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // 2^64-1 elements or bytes announced in a few bytes of input.
        for wire in [
            "9bffffffffffffffff",
            "bbffffffffffffffff",
            "5bffffffffffffffff",
        ] {
            assert!(matches!(
                decode(&hex(wire)),
                Err(CborError::Truncated { .. })
            ));
        }
        // A map of 3 entries needs at least 6 more bytes.
        assert!(matches!(
            decode(&hex("a3 01 02 03 04 05")),
            Err(CborError::Truncated { .. })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = vec![0x81; MAX_DEPTH];
        deep.push(0x00);
        assert!(decode(&deep).is_ok());
        let mut too_deep = vec![0x81; MAX_DEPTH + 1];
        too_deep.push(0x00);
        assert_eq!(
            decode(&too_deep),
            Err(CborError::TooDeep {
                offset: MAX_DEPTH + 1
            })
        );
        let tags = vec![0xc2; MAX_DEPTH + 2];
        assert!(matches!(decode(&tags), Err(CborError::TooDeep { .. })));
    }

    #[test]
    fn out_of_range_integers_encode_as_doubles() {
        let big = i128::from(u64::MAX) + 1;
        assert_eq!(
            decode(&encode(&Value::Integer(big))),
            Ok(Value::Float(18_446_744_073_709_551_616.0))
        );
    }
}
