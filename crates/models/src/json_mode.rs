//! JSON mode (OpenAI's `response_format: {"type": "json_object"}`): an incremental
//! validator of JSON text (RFC 8259) whose top level is an object, fed byte by byte, so
//! the generator can let through only tokens that keep the output a valid prefix and end
//! the output only once the object is complete.
//!
//! The state is `Copy` (containers as a bit stack, up to [`DEPTH_MAX`] levels), so trying
//! every token of the vocabulary from the current state costs no allocation. Runs of
//! whitespace outside strings are capped at [`WHITESPACE_RUN_MAX`] bytes: a small model
//! forced into JSON can otherwise emit blank lines until `max_tokens` (OpenAI warns of the
//! same).

/// Deepest nesting of objects and arrays.
pub const DEPTH_MAX: u32 = 128;
/// Most whitespace bytes in a row outside strings.
pub const WHITESPACE_RUN_MAX: u8 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The first byte: `{` (after optional whitespace).
    Start,
    /// A value (after `:`, or `,` in an array).
    Value,
    /// A value or `]` (after `[`).
    ValueOrClose,
    /// A key or `}` (after `{`).
    KeyOrClose,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the closing bracket, after a value in a container.
    CommaOrClose,
    /// Inside a string (a key or a value).
    Str { key: bool, escape: Escape },
    /// Inside a number.
    Num(Num),
    /// The rest of `true`, `false` or `null`.
    Literal { word: &'static [u8], at: u8 },
    /// The top-level object is complete: whitespace only.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// After `\`.
    Backslash,
    /// Hex digits left of a `\u` escape.
    Hex(u8),
    /// Inside a multi-byte UTF-8 character: continuation bytes left, and the range the
    /// next one must fall in (Unicode's table of well-formed sequences: no overlong forms,
    /// no surrogates, nothing above U+10FFFF).
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

/// Where a JSON text stands after the bytes fed so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonPrefix {
    expect: Expect,
    /// Open containers, innermost in bit 0: 1 an object, 0 an array.
    stack: u128,
    depth: u32,
    /// Whitespace bytes in a row (outside strings).
    blank: u8,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        JsonPrefix { expect: Expect::Start, stack: 0, depth: 0, blank: 0 }
    }
}

impl JsonPrefix {
    /// Whether the bytes fed so far are a whole JSON object (trailing whitespace allowed).
    pub fn is_complete(&self) -> bool {
        self.expect == Expect::Done
    }

    /// Whether the text is inside a string between characters (no escape or character
    /// half done), where any run of [`is_plain_string_text`] bytes is accepted as is.
    pub fn in_plain_string(&self) -> bool {
        matches!(self.expect, Expect::Str { escape: Escape::None, .. })
    }

    /// Whether `b` would be accepted (the state itself unchanged).
    pub fn accepts(self, b: u8) -> bool {
        let mut next = self;
        next.feed(b)
    }

    /// Whether `bytes` would all be accepted (the state itself unchanged).
    pub fn accepts_all(self, bytes: &[u8]) -> bool {
        let mut next = self;
        next.feed_all(bytes)
    }

    /// Feeds `bytes`; false (the state then undefined) if any byte cannot continue a valid
    /// JSON object.
    pub fn feed_all(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.feed(b))
    }

    /// Feeds one byte; false if it cannot continue a valid JSON object.
    pub fn feed(&mut self, b: u8) -> bool {
        let whitespace = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        match self.expect {
            Expect::Str { key, escape } => return self.string(key, escape, b),
            Expect::Num(n) => return self.number(n, b),
            Expect::Literal { word, at } => {
                if word.get(at as usize) != Some(&b) {
                    return false;
                }
                self.expect = if at as usize + 1 == word.len() {
                    self.after_value()
                } else {
                    Expect::Literal { word, at: at + 1 }
                };
                return true;
            }
            _ => {}
        }
        if whitespace {
            if self.blank >= WHITESPACE_RUN_MAX {
                return false;
            }
            self.blank += 1;
            return true;
        }
        self.blank = 0;
        match (self.expect, b) {
            (Expect::Start, b'{') => self.open(true),
            (Expect::Start | Expect::Done, _) => false,
            (Expect::Value | Expect::ValueOrClose, _) if self.value_start(b) => true,
            (Expect::ValueOrClose, b']') | (Expect::KeyOrClose, b'}') => self.close(),
            (Expect::KeyOrClose | Expect::Key, b'"') => {
                self.expect = Expect::Str { key: true, escape: Escape::None };
                true
            }
            (Expect::Colon, b':') => {
                self.expect = Expect::Value;
                true
            }
            (Expect::CommaOrClose, b',') => {
                self.expect = if self.in_object() { Expect::Key } else { Expect::Value };
                true
            }
            (Expect::CommaOrClose, b'}') if self.in_object() => self.close(),
            (Expect::CommaOrClose, b']') if !self.in_object() => self.close(),
            _ => false,
        }
    }

    fn in_object(&self) -> bool {
        self.stack & 1 == 1
    }

    fn open(&mut self, object: bool) -> bool {
        if self.depth == DEPTH_MAX {
            return false;
        }
        self.stack = (self.stack << 1) | u128::from(object);
        self.depth += 1;
        self.expect = if object { Expect::KeyOrClose } else { Expect::ValueOrClose };
        true
    }

    fn close(&mut self) -> bool {
        self.stack >>= 1;
        self.depth -= 1;
        self.expect = self.after_value();
        true
    }

    /// What follows a complete value.
    fn after_value(&self) -> Expect {
        if self.depth == 0 {
            Expect::Done
        } else {
            Expect::CommaOrClose
        }
    }

    /// The first byte of a value; false if no value starts with it.
    fn value_start(&mut self, b: u8) -> bool {
        self.expect = match b {
            b'{' => return self.open(true),
            b'[' => return self.open(false),
            b'"' => Expect::Str { key: false, escape: Escape::None },
            b'-' => Expect::Num(Num::Minus),
            b'0' => Expect::Num(Num::Zero),
            b'1'..=b'9' => Expect::Num(Num::Int),
            b't' => Expect::Literal { word: b"true", at: 1 },
            b'f' => Expect::Literal { word: b"false", at: 1 },
            b'n' => Expect::Literal { word: b"null", at: 1 },
            _ => return false,
        };
        true
    }

    fn string(&mut self, key: bool, escape: Escape, b: u8) -> bool {
        let next = match (escape, b) {
            (Escape::None, b'"') => {
                self.expect = if key { Expect::Colon } else { self.after_value() };
                return true;
            }
            (Escape::None, b'\\') => Escape::Backslash,
            (Escape::None, 0x00..=0x1f) => return false,
            (Escape::None, 0x00..=0x7f) => Escape::None,
            (Escape::None, 0xc2..=0xdf) => Escape::Utf8 { left: 1, lo: 0x80, hi: 0xbf },
            (Escape::None, 0xe0) => Escape::Utf8 { left: 2, lo: 0xa0, hi: 0xbf },
            (Escape::None, 0xe1..=0xec | 0xee..=0xef) => Escape::Utf8 { left: 2, lo: 0x80, hi: 0xbf },
            (Escape::None, 0xed) => Escape::Utf8 { left: 2, lo: 0x80, hi: 0x9f },
            (Escape::None, 0xf0) => Escape::Utf8 { left: 3, lo: 0x90, hi: 0xbf },
            (Escape::None, 0xf1..=0xf3) => Escape::Utf8 { left: 3, lo: 0x80, hi: 0xbf },
            (Escape::None, 0xf4) => Escape::Utf8 { left: 3, lo: 0x80, hi: 0x8f },
            (Escape::Utf8 { left, lo, hi }, _) if (lo..=hi).contains(&b) => {
                if left == 1 {
                    Escape::None
                } else {
                    Escape::Utf8 { left: left - 1, lo: 0x80, hi: 0xbf }
                }
            }
            (Escape::Backslash, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Escape::None,
            (Escape::Backslash, b'u') => Escape::Hex(4),
            (Escape::Hex(n), _) if b.is_ascii_hexdigit() => {
                if n == 1 {
                    Escape::None
                } else {
                    Escape::Hex(n - 1)
                }
            }
            _ => return false,
        };
        self.expect = Expect::Str { key, escape: next };
        true
    }

    fn number(&mut self, n: Num, b: u8) -> bool {
        let digit = b.is_ascii_digit();
        let next = match (n, b) {
            (Num::Minus, b'0') => Num::Zero,
            (Num::Minus, _) if digit => Num::Int,
            (Num::Int, _) if digit => Num::Int,
            (Num::Zero | Num::Int, b'.') => Num::Dot,
            (Num::Dot | Num::Frac, _) if digit => Num::Frac,
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
            (Num::Exp, b'+' | b'-') => Num::ExpSign,
            (Num::Exp | Num::ExpSign | Num::ExpDigits, _) if digit => Num::ExpDigits,
            // The number ended with the byte before: this one follows the value.
            (Num::Zero | Num::Int | Num::Frac | Num::ExpDigits, _) => {
                self.expect = self.after_value();
                return self.feed(b);
            }
            _ => return false,
        };
        self.expect = Expect::Num(next);
        true
    }
}

/// Whether `bytes` are string content needing no escape: whole UTF-8 characters, no `"`,
/// no `\\`, no control characters. Inside a string ([`JsonPrefix::in_plain_string`]) such
/// bytes are accepted and leave the state as it was, so a generator can test a token with
/// this precomputed flag instead of feeding it.
pub fn is_plain_string_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|t| t.chars().all(|c| c != '"' && c != '\\' && c >= ' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &str) -> Option<JsonPrefix> {
        let mut p = JsonPrefix::default();
        p.feed_all(text.as_bytes()).then_some(p)
    }

    #[test]
    fn whole_objects_are_complete() {
        for text in [
            "{}",
            " {\"a\": 1}\n",
            r#"{"a":[1,-0.5e+3,true,false,null,"x\"\\\u00e9",{"b":[]}],"c":{}}"#,
            "{\"é\": \"ü\", \"n\": 0}",
            "{\"a\": 10, \"b\": 2E5}",
        ] {
            let p = accepts(text).unwrap_or_else(|| panic!("refused {text:?}"));
            assert!(p.is_complete(), "{text:?}");
        }
    }

    #[test]
    fn prefixes_are_valid_but_not_complete() {
        for text in ["{", "{\"a", "{\"a\":", "{\"a\": [1, 2", "{\"a\": -", "{\"a\": 1.", "{\"a\": tr", "{\"a\":\"\\u00"]
        {
            let p = accepts(text).unwrap_or_else(|| panic!("refused {text:?}"));
            assert!(!p.is_complete(), "{text:?}");
        }
    }

    #[test]
    fn invalid_bytes_are_refused() {
        for text in [
            "[]",
            "1",
            "\"a\"",
            "{} x",
            "{,}",
            "{\"a\" 1}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": -x}",
            "{\"a\": tru}",
            "{\"a\": [1,]}",
            "{\"a\": 1,}",
            "{\"a\": \"\\x\"}",
            "{\"a\": \"\n\"}",
            "{\"a\": [}",
            "{\"a\": 1]",
            "{a: 1}",
        ] {
            assert!(accepts(text).is_none_or(|p| !p.is_complete()), "accepted {text:?}");
        }
        assert!(accepts(&format!("{{{}", " ".repeat(WHITESPACE_RUN_MAX as usize + 1))).is_none());
        // UTF-8 inside strings: a split character is a valid prefix; a bad one is refused.
        let mut p = JsonPrefix::default();
        assert!(p.feed_all(b"{\"\xc3"));
        assert!(p.clone().feed_all(b"\xa9\":1}"));
        assert!(!p.clone().feed(b'"'));
        for bad in [&b"\xc0\xaf"[..], b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\x80"] {
            let mut p = JsonPrefix::default();
            assert!(!(p.feed_all(b"{\"") && p.feed_all(bad)), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}", "[".repeat(DEPTH_MAX as usize - 1));
        assert!(accepts(&deep).is_some());
        assert!(accepts(&(deep + "[")).is_none());
    }

    #[test]
    fn plain_string_text_leaves_the_state_unchanged() {
        let mut p = JsonPrefix::default();
        assert!(p.feed_all(b"{\"a\": \"x"));
        assert!(p.in_plain_string());
        for text in ["hello", " wörld €", "<|im_end|>", ""] {
            assert!(is_plain_string_text(text.as_bytes()));
            let mut q = p;
            assert!(q.feed_all(text.as_bytes()) && q == p, "{text:?}");
        }
        for text in [&b"a\"b"[..], b"\\", b"\n", b"\xc3"] {
            assert!(!is_plain_string_text(text));
        }
        assert!(!JsonPrefix::default().in_plain_string());
    }

    proptest::proptest! {
        /// Any object serde_json writes (compact or pretty) is accepted and complete.
        #[test]
        fn serde_json_objects_are_accepted(keys in proptest::collection::vec("[a-z\"\\\\é\u{1}]{0,6}", 0..5),
                                           numbers in proptest::collection::vec(-1e9f64..1e9, 0..5),
                                           pretty in proptest::bool::ANY) {
            let mut object = serde_json::Map::new();
            for (i, k) in keys.iter().enumerate() {
                let v = match numbers.get(i) {
                    Some(x) => serde_json::json!([x, {"k": k}, null, true]),
                    None => serde_json::json!(k),
                };
                object.insert(k.clone(), v);
            }
            let text = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                serde_json::to_string(&object).unwrap()
            };
            let p = accepts(&text);
            proptest::prop_assert!(p.is_some_and(|p| p.is_complete()), "{}", text);
        }

        /// Whatever the validator calls complete, serde_json parses as an object.
        #[test]
        fn complete_means_parseable(bytes in proptest::collection::vec(
            proptest::sample::select(b"{}[]\":,0123456789-+.eEtrufalsn \\u\xc3\xa9\xe2\x82\xacab".to_vec()), 0..40)) {
            let mut p = JsonPrefix::default();
            if p.feed_all(&bytes) && p.is_complete() {
                let v: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
                proptest::prop_assert!(v.as_ref().is_ok_and(|v| v.is_object()), "{:?}: {:?}", String::from_utf8_lossy(&bytes), v);
            }
        }
    }
}
