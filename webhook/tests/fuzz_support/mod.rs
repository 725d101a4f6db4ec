//! Input generators of the fuzz campaign: a seeded PRNG and mutations of a review's JSON text.
//!
//! Mutations work on the text, not on a `Value`, because the interesting inputs are those
//! a `Value` cannot hold: duplicate keys, 100 000 levels of nesting (a `Value` that deep
//! overflows the stack when dropped), broken escapes, a body cut in the middle.

use serde_json::Value;

/// splitmix64: small, seedable, good enough to pick mutations.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Values of every JSON type, including the ones podid looks for and numbers serde refuses.
const OTHER_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1501",
    "1501.0",
    "-1501",
    "1e400",
    "18446744073709551616",
    "9223372036854775808",
    r#""""#,
    r#""1501""#,
    r#""podid-proxy""#,
    r#""NET_ADMIN""#,
    "[]",
    "{}",
    "[1501]",
    r#"{"runAsUser":1501}"#,
    r#"[{"name":"podid-init"}]"#,
    r#"{"":""}"#,
];

/// Keys the planner reads, for duplicates and case games.
const READ_KEYS: &[&str] = &[
    "metadata",
    "spec",
    "name",
    "labels",
    "annotations",
    "containers",
    "initContainers",
    "securityContext",
    "runAsUser",
    "env",
    "volumes",
    "hostNetwork",
    "privileged",
    "capabilities",
    "add",
    "uid",
    "object",
    "request",
    "operation",
    "kind",
    "namespace",
];

/// Broken or odd string bodies (raw JSON text, quotes included).
const BAD_STRINGS: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00\ud800""#,
    r#""\x41""#,
    r#""\u12""#,
    "\"a\u{1}b\"",
    r#""\u0000""#,
    "\"\u{FEFF}podid-proxy\"",
    r#""\\""#,
    "\"\u{10FFFF}\"",
    "\"unterminated",
];

/// One mutation of a review.
#[derive(Debug)]
pub struct Mutator<'r> {
    rng: &'r mut Rng,
}

/// What to do at the chosen node while writing.
enum Action {
    /// Write this text instead of the node.
    Raw(String),
    /// Objects: write one of the node's keys again with this value text.
    Duplicate { value: Option<String>, first: bool },
    /// Objects: write one of the node's keys with other letter case.
    Recase,
}

impl<'r> Mutator<'r> {
    pub fn new(rng: &'r mut Rng) -> Self {
        Self { rng }
    }

    /// A mutated body and the name of the mutation.
    pub fn mutate(&mut self, review: &Value) -> (&'static str, Vec<u8>) {
        let nodes = count(review);
        let target = self.rng.below(nodes);
        let (kind, action) = match self.rng.below(10) {
            0 => return ("truncated", self.truncate(review)),
            1 => return ("byte_flips", self.flip(review)),
            2 => ("deep_nesting", Action::Raw(self.deep())),
            3 => ("huge_string", Action::Raw(self.huge_string())),
            4 => (
                "bad_string",
                Action::Raw((*self.rng.pick(BAD_STRINGS)).to_owned()),
            ),
            5 | 6 => {
                let value =
                    (self.rng.below(2) == 0).then(|| (*self.rng.pick(OTHER_VALUES)).to_owned());
                let first = self.rng.below(2) == 0;
                ("duplicate_key", Action::Duplicate { value, first })
            }
            7 => ("key_case", Action::Recase),
            _ => (
                "wrong_type",
                Action::Raw((*self.rng.pick(OTHER_VALUES)).to_owned()),
            ),
        };
        let mut out = String::new();
        let mut at = 0;
        self.write(review, target, &action, &mut at, &mut out);
        (kind, out.into_bytes())
    }

    fn truncate(&mut self, review: &Value) -> Vec<u8> {
        let mut text = serde_json::to_vec(review).unwrap();
        let cut = self.rng.below(text.len() as u64) as usize;
        text.truncate(cut);
        text
    }

    fn flip(&mut self, review: &Value) -> Vec<u8> {
        let mut text = serde_json::to_vec(review).unwrap();
        for _ in 0..=self.rng.below(8) {
            let i = self.rng.below(text.len() as u64) as usize;
            text[i] = *self.rng.pick(b"{}[]\",:\\0 \xff\x00e-");
        }
        text
    }

    fn deep(&mut self) -> String {
        let depth = *self
            .rng
            .pick(&[64, 126, 127, 128, 129, 200, 5_000, 100_000]);
        if self.rng.below(2) == 0 {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!(
                "{}1501{}",
                r#"{"securityContext":"#.repeat(depth),
                "}".repeat(depth)
            )
        }
    }

    fn huge_string(&mut self) -> String {
        // The largest exceeds the router's 1 MiB limit: a 400, not an allocation without end.
        let len = *self.rng.pick(&[1_000, 65_536, 300_000, 1_200_000]);
        let unit = *self.rng.pick(&["a", "\\u00e9", "\\\"", "é", "\\n"]);
        format!("\"{}\"", unit.repeat(len / unit.len()))
    }

    fn write(&mut self, v: &Value, target: u64, action: &Action, at: &mut u64, out: &mut String) {
        let here = *at == target;
        *at += 1;
        if let (true, Action::Raw(text)) = (here, action) {
            out.push_str(text);
            skip(v, at);
            return;
        }
        match v {
            Value::Object(map) => {
                out.push('{');
                let extra = match (here, action) {
                    (true, Action::Duplicate { value, first }) if !map.is_empty() => {
                        let keys: Vec<&String> = map.keys().collect();
                        let key = (*self.rng.pick(&keys)).clone();
                        let text = value.clone().unwrap_or_else(|| map[&key].to_string());
                        Some((key, text, *first))
                    }
                    _ => None,
                };
                let recase = (here && matches!(action, Action::Recase) && !map.is_empty())
                    .then(|| self.rng.below(map.len() as u64) as usize);
                let mut sep = "";
                if let Some((key, text, true)) = &extra {
                    out.push_str(&format!("{}:{text}", quoted(key)));
                    sep = ",";
                }
                for (i, (k, child)) in map.iter().enumerate() {
                    out.push_str(sep);
                    sep = ",";
                    let key = if recase == Some(i) {
                        swap_case(k)
                    } else {
                        k.clone()
                    };
                    out.push_str(&quoted(&key));
                    out.push(':');
                    self.write(child, target, action, at, out);
                }
                if let Some((key, text, false)) = &extra {
                    out.push_str(&format!("{sep}{}:{text}", quoted(key)));
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, child) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(child, target, action, at, out);
                }
                out.push(']');
            }
            // A duplicate wanted on a scalar: duplicate a key the planner reads instead.
            _ if here && matches!(action, Action::Duplicate { .. }) => {
                let key = self.rng.pick(READ_KEYS);
                out.push_str(&format!("{{{k}:{v},{k}:{v}}}", k = quoted(key)));
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn swap_case(k: &str) -> String {
    let mut chars: Vec<char> = k.chars().collect();
    if let Some(c) = chars.first_mut() {
        *c = if c.is_uppercase() {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        };
    }
    chars.into_iter().collect()
}

/// Nodes of `v`, itself included, in the order `write` visits them.
fn count(v: &Value) -> u64 {
    1 + match v {
        Value::Object(m) => m.values().map(count).sum(),
        Value::Array(a) => a.iter().map(count).sum(),
        _ => 0,
    }
}

/// Advances the node counter past `v`'s children (it was replaced whole).
fn skip(v: &Value, at: &mut u64) {
    *at += count(v) - 1;
}
