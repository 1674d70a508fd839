//! Editing a parsed message while keeping every untouched byte.
//!
//! An [`Editor`] is built from a [`Message`] and holds a view of its header list: each entry is
//! either an original field (kept as a span of the original buffer) or a new line. Operations
//! change that view; [`Editor::finish`] then writes the start line, the entries in order, the
//! empty line and the body into one allocation of exactly the right size, copying runs of
//! untouched original fields as single slices. Original fields are never reordered, so the
//! output is the original buffer with replacements spliced in at increasing offsets. When
//! nothing changed, `finish` returns [`Message::wire`] itself (byte-identical, zero-copy).
//!
//! **Order of operations.** Each operation applies at once, in call order, to the header list
//! the previous ones left, so the last operation on a field wins: `remove_header(X)` then
//! `set_header(X, v)` leaves one `X: v` (appended at the end, the original position having
//! gone); `set_header(X, v)` then `remove_header(X)` leaves no `X`; `push_via(v)` then
//! `pop_via()` removes the Via just pushed; two `set_body` calls keep the second body.
//!
//! **Validation.** Values and URIs may not hold CR, LF or NUL (that would let a value inject
//! header fields or end the header section), names must be tokens, and Content-Length is only
//! written by [`Editor::set_body`], which keeps it equal to the body length. Nothing else about
//! a value is checked: an invalid value gives a message that the receiver rejects, never one
//! that it frames differently.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::chars::is_token_str;
use crate::message::{HeaderField, Message, StartLine};
use crate::name::HeaderName;
use crate::uri::{parse_uri, UriContext};

/// Why an edit was refused. A refused operation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EditError {
    /// The value holds CR, LF or NUL at this index (header injection).
    ForbiddenByte { index: usize },
    /// Via, Route, Record-Route, Contact and Content-Type values may not be empty.
    EmptyValue,
    /// The header name is not a token (or is `HeaderName::Other`, which has no text).
    BadName,
    /// Content-Length is written only by `set_body`, which keeps it right.
    ContentLength,
    /// The Request-URI is not a valid URI or holds white space.
    BadRequestUri,
    /// The Request-URI of a response was to be set.
    NotARequest,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::ForbiddenByte { index } => {
                write!(f, "CR, LF or NUL at byte {index} of a header value")
            }
            EditError::EmptyValue => f.write_str("empty header value"),
            EditError::BadName => f.write_str("header name is not a token"),
            EditError::ContentLength => f.write_str("Content-Length is set by set_body only"),
            EditError::BadRequestUri => f.write_str("malformed Request-URI"),
            EditError::NotARequest => f.write_str("a response has no Request-URI"),
        }
    }
}

impl std::error::Error for EditError {}

/// A header name for [`Editor`] operations: a known [`HeaderName`] or the text of a name.
/// Text that names a known header (in any case, compact forms included) means that header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldName<'a> {
    Known(HeaderName),
    Text(&'a str),
}

impl From<HeaderName> for FieldName<'static> {
    fn from(n: HeaderName) -> Self {
        FieldName::Known(n)
    }
}

impl<'a> From<&'a str> for FieldName<'a> {
    fn from(s: &'a str) -> Self {
        FieldName::Text(s)
    }
}

/// A checked name: `Other` comes with its text.
#[derive(Debug, Clone, Copy)]
enum Name<'a> {
    Known(HeaderName),
    Extension(&'a str),
}

impl<'a> FieldName<'a> {
    fn resolve(self) -> Result<Name<'a>, EditError> {
        match self {
            FieldName::Known(HeaderName::Other) => Err(EditError::BadName),
            FieldName::Known(n) => Ok(Name::Known(n)),
            FieldName::Text(s) if !is_token_str(s) => Err(EditError::BadName),
            FieldName::Text(s) => match HeaderName::from_bytes(s.as_bytes()) {
                HeaderName::Other => Ok(Name::Extension(s)),
                n => Ok(Name::Known(n)),
            },
        }
    }
}

/// One entry of the edited header list.
#[derive(Debug, Clone)]
enum Entry {
    /// An original field, untouched.
    Orig(HeaderField),
    /// A new or rewritten field: the whole line with its CRLF, where its name ends and where
    /// its value lies in `line`.
    New {
        name: HeaderName,
        line: Vec<u8>,
        name_end: usize,
        value: Range<usize>,
    },
}

impl Entry {
    fn name(&self) -> HeaderName {
        match self {
            Entry::Orig(f) => f.name,
            Entry::New { name, .. } => *name,
        }
    }
}

/// Records edits to one message and writes the result. See the module documentation.
#[derive(Debug, Clone)]
pub struct Editor<'m> {
    msg: &'m Message,
    uri: Option<String>,
    entries: Vec<Entry>,
    body: Option<Bytes>,
}

/// Rejects CR, LF and NUL anywhere in `v`.
fn check_value(v: &str) -> Result<(), EditError> {
    match v.bytes().position(|c| matches!(c, b'\r' | b'\n' | 0)) {
        Some(index) => Err(EditError::ForbiddenByte { index }),
        None => Ok(()),
    }
}

fn check_nonempty_value(v: &str) -> Result<(), EditError> {
    check_value(v)?;
    if v.trim_matches([' ', '\t']).is_empty() {
        return Err(EditError::EmptyValue);
    }
    Ok(())
}

/// The name of `e` as written.
fn name_text<'e>(msg: &'e Message, e: &'e Entry) -> &'e [u8] {
    match e {
        Entry::Orig(f) => msg.slice(f.name_span),
        Entry::New { line, name_end, .. } => line.get(..*name_end).unwrap_or(&[]),
    }
}

/// Whether `e` is called `name` (extension names compare case-insensitively).
fn matches(msg: &Message, e: &Entry, name: Name<'_>) -> bool {
    match name {
        Name::Known(n) => e.name() == n,
        Name::Extension(s) => {
            e.name() == HeaderName::Other && name_text(msg, e).eq_ignore_ascii_case(s.as_bytes())
        }
    }
}

/// `Name: value\r\n` for a checked name and value.
fn new_entry(name: Name<'_>, value: &[u8]) -> Entry {
    let (hn, text) = match name {
        Name::Known(n) => (n, n.canonical().unwrap_or("")),
        Name::Extension(s) => (HeaderName::Other, s),
    };
    let mut line = Vec::with_capacity(text.len() + value.len() + 4);
    line.extend_from_slice(text.as_bytes());
    line.extend_from_slice(b": ");
    let vs = line.len();
    line.extend_from_slice(value);
    let ve = line.len();
    line.extend_from_slice(b"\r\n");
    Entry::New {
        name: hn,
        line,
        name_end: text.len(),
        value: vs..ve,
    }
}

/// Index of the first comma of `v` that separates values: not inside a quoted string (with
/// its backslash escapes) nor inside `<...>` (a SIP URI user part may hold commas).
fn first_top_level_comma(v: &[u8]) -> Option<usize> {
    let mut in_quote = false;
    let mut in_angle = false;
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if in_quote {
            match c {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_quote = true,
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => return Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

impl<'m> Editor<'m> {
    pub fn new(msg: &'m Message) -> Editor<'m> {
        Editor {
            msg,
            uri: None,
            entries: msg.fields().iter().copied().map(Entry::Orig).collect(),
            body: None,
        }
    }

    /// The message being edited.
    pub fn message(&self) -> &'m Message {
        self.msg
    }

    // ----- the view -----

    fn position(&self, name: Name<'_>) -> Option<usize> {
        self.entries.iter().position(|e| matches(self.msg, e, name))
    }

    /// Index just after the last Via, or 0.
    fn after_vias(&self) -> usize {
        self.entries
            .iter()
            .rposition(|e| e.name() == HeaderName::Via)
            .map_or(0, |i| i + 1)
    }

    fn remove_all(&mut self, name: Name<'_>) -> usize {
        let before = self.entries.len();
        let msg = self.msg;
        self.entries.retain(|e| !matches(msg, e, name));
        before - self.entries.len()
    }

    /// Removes the first value of the first field called `name`: the whole field when it holds
    /// one value, else the field rewritten without its first value (name, spacing and folds of
    /// the rest kept). Returns whether there was such a field.
    fn remove_first_value(&mut self, name: HeaderName) -> bool {
        let Some(i) = self.position(Name::Known(name)) else {
            return false;
        };
        let (line, value): (&[u8], Range<usize>) = match &self.entries[i] {
            Entry::Orig(f) => {
                let base = f.line_span.start as usize;
                (
                    self.msg.slice(f.line_span),
                    f.value_span.start as usize - base..f.value_span.end as usize - base,
                )
            }
            Entry::New { line, value, .. } => (line, value.clone()),
        };
        let name_end = match &self.entries[i] {
            Entry::Orig(f) => f.name_span.len(),
            Entry::New { name_end, .. } => *name_end,
        };
        let v = line.get(value.clone()).unwrap_or(&[]);
        let rest_start = first_top_level_comma(v).map(|c| {
            let mut r = c;
            while matches!(v.get(r), Some(b',' | b' ' | b'\t' | b'\r' | b'\n')) {
                r += 1;
            }
            r
        });
        match rest_start {
            Some(r) if r < v.len() => {
                let head = line.get(..value.start).unwrap_or(&[]);
                let rest = &v[r..];
                let tail = line.get(value.end..).unwrap_or(&[]);
                let mut new = Vec::with_capacity(head.len() + rest.len() + tail.len());
                new.extend_from_slice(head);
                new.extend_from_slice(rest);
                new.extend_from_slice(tail);
                self.entries[i] = Entry::New {
                    name,
                    line: new,
                    name_end,
                    value: head.len()..head.len() + rest.len(),
                };
            }
            _ => {
                self.entries.remove(i);
            }
        }
        true
    }

    // ----- operations -----

    /// Replaces the Request-URI. It must parse as a Request-URI (no white space, no CR/LF).
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), EditError> {
        if !self.msg.is_request() {
            return Err(EditError::NotARequest);
        }
        check_value(uri)?;
        if uri.bytes().any(|c| c <= b' ' || c >= 0x7f) {
            return Err(EditError::BadRequestUri);
        }
        parse_uri(uri, 0, UriContext::RequestUri, usize::MAX)
            .map_err(|_| EditError::BadRequestUri)?;
        self.uri = Some(uri.to_owned());
        Ok(())
    }

    /// Adds `Via: value` as the topmost Via (before the first Via, or first of all headers).
    pub fn push_via(&mut self, value: &str) -> Result<(), EditError> {
        check_nonempty_value(value)?;
        let at = self.position(Name::Known(HeaderName::Via)).unwrap_or(0);
        self.entries.insert(
            at,
            new_entry(Name::Known(HeaderName::Via), value.as_bytes()),
        );
        Ok(())
    }

    /// Removes the topmost Via value. Returns `false` when there is no Via.
    pub fn pop_via(&mut self) -> bool {
        self.remove_first_value(HeaderName::Via)
    }

    /// Adds a Route value in front of the others (before the first Route, else after the Vias).
    pub fn add_route_front(&mut self, value: &str) -> Result<(), EditError> {
        self.insert_in_front(HeaderName::Route, value)
    }

    /// Removes the first Route value. Returns `false` when there is no Route.
    pub fn remove_first_route(&mut self) -> bool {
        self.remove_first_value(HeaderName::Route)
    }

    /// Removes every Route field; returns how many.
    pub fn remove_routes(&mut self) -> usize {
        self.remove_all(Name::Known(HeaderName::Route))
    }

    /// Adds a Record-Route value in front of the others (before the first Record-Route, else
    /// after the Vias).
    pub fn add_record_route(&mut self, value: &str) -> Result<(), EditError> {
        self.insert_in_front(HeaderName::RecordRoute, value)
    }

    /// Inserts a `name` field before the first field of that name, else after the Vias: the
    /// place of a new topmost Route or Record-Route value.
    fn insert_in_front(&mut self, name: HeaderName, value: &str) -> Result<(), EditError> {
        check_nonempty_value(value)?;
        let at = self
            .position(Name::Known(name))
            .unwrap_or_else(|| self.after_vias());
        self.entries
            .insert(at, new_entry(Name::Known(name), value.as_bytes()));
        Ok(())
    }

    /// Removes every Record-Route field; returns how many.
    pub fn remove_record_routes(&mut self) -> usize {
        self.remove_all(Name::Known(HeaderName::RecordRoute))
    }

    /// Replaces every Contact field with one `Contact: value` (where the first one was).
    pub fn set_contact(&mut self, value: &str) -> Result<(), EditError> {
        check_nonempty_value(value)?;
        self.set_header(HeaderName::Contact, value)
    }

    /// Replaces the first field called `name` with `Name: value` in the same place and removes
    /// the others; appends the field at the end of the headers when there is none.
    pub fn set_header<'a>(
        &mut self,
        name: impl Into<FieldName<'a>>,
        value: &str,
    ) -> Result<(), EditError> {
        let name = self.writable(name.into())?;
        check_value(value)?;
        self.put(name, value.as_bytes());
        Ok(())
    }

    /// Removes every field called `name`; returns how many.
    pub fn remove_header<'a>(
        &mut self,
        name: impl Into<FieldName<'a>>,
    ) -> Result<usize, EditError> {
        let name = self.writable(name.into())?;
        Ok(self.remove_all(name))
    }

    /// Appends `Name: value` at the end of the headers.
    pub fn add_header<'a>(
        &mut self,
        name: impl Into<FieldName<'a>>,
        value: &str,
    ) -> Result<(), EditError> {
        let name = self.writable(name.into())?;
        check_value(value)?;
        self.entries.push(new_entry(name, value.as_bytes()));
        Ok(())
    }

    /// Replaces the body and sets Content-Length to its length: the existing Content-Length
    /// value is replaced in place (its name, compact `l` included, and spacing kept), or the
    /// field is appended. With `content_type`, Content-Type is set as by `set_header`; without,
    /// it is left alone. An empty body gives `Content-Length: 0`.
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) -> Result<(), EditError> {
        if let Some(ct) = content_type {
            check_nonempty_value(ct)?;
            self.put(Name::Known(HeaderName::ContentType), ct.as_bytes());
        }
        let len = body.len().to_string();
        let cl = Name::Known(HeaderName::ContentLength);
        match self.position(cl) {
            Some(i) => {
                let (line, value, name_end) = match &self.entries[i] {
                    Entry::Orig(f) => {
                        let base = f.line_span.start as usize;
                        (
                            self.msg.slice(f.line_span),
                            f.value_span.start as usize - base..f.value_span.end as usize - base,
                            f.name_span.len(),
                        )
                    }
                    Entry::New {
                        line,
                        value,
                        name_end,
                        ..
                    } => (&line[..], value.clone(), *name_end),
                };
                let head = line.get(..value.start).unwrap_or(&[]);
                let tail = line.get(value.end..).unwrap_or(&[]);
                let mut new = Vec::with_capacity(head.len() + len.len() + tail.len());
                new.extend_from_slice(head);
                new.extend_from_slice(len.as_bytes());
                new.extend_from_slice(tail);
                self.entries[i] = Entry::New {
                    name: HeaderName::ContentLength,
                    line: new,
                    name_end,
                    value: head.len()..head.len() + len.len(),
                };
                // There is no second one: the parser rejects duplicates and the other
                // operations refuse to write Content-Length.
            }
            None => self.entries.push(new_entry(cl, len.as_bytes())),
        }
        self.body = Some(body);
        Ok(())
    }

    /// A name that the generic operations may write: not Content-Length.
    fn writable<'a>(&self, name: FieldName<'a>) -> Result<Name<'a>, EditError> {
        match name.resolve()? {
            Name::Known(HeaderName::ContentLength) => Err(EditError::ContentLength),
            n => Ok(n),
        }
    }

    /// `set_header` once checked.
    fn put(&mut self, name: Name<'_>, value: &[u8]) {
        let entry = new_entry(name, value);
        match self.position(name) {
            Some(i) => {
                self.remove_all(name);
                self.entries.insert(i, entry);
            }
            None => self.entries.push(entry),
        }
    }

    // ----- output -----

    /// Writes the edited message. Without any effective change this is [`Message::wire`]
    /// (same bytes, same buffer).
    pub fn finish(self) -> Bytes {
        let msg = self.msg;
        let sl = msg.start_line_span();
        let mut pieces = Pieces::default();
        match (&self.uri, msg.start_line()) {
            (Some(uri), StartLine::Request { uri_span, .. }) => {
                pieces.push_orig(sl.start as usize..uri_span.start as usize);
                pieces.push_new(uri.as_bytes());
                pieces.push_orig(uri_span.end as usize..sl.end as usize);
            }
            _ => pieces.push_orig(sl.range()),
        }
        for e in &self.entries {
            match e {
                Entry::Orig(f) => pieces.push_orig(f.line_span.range()),
                Entry::New { line, .. } => pieces.push_new(line),
            }
        }
        let head_end = msg.head_end();
        let headers_end = msg
            .fields()
            .last()
            .map_or(sl.end as usize, |f| f.line_span.end as usize);
        pieces.push_orig(headers_end..head_end);
        match &self.body {
            Some(b) => pieces.push_new(b),
            None => pieces.push_orig(msg.body_span().range()),
        }
        if let [Piece::Orig(r)] = &pieces.0[..] {
            if *r == (sl.start as usize..msg.body_span().end as usize) {
                return msg.wire();
            }
        }
        let buf = msg.buffer();
        let total: usize = pieces
            .0
            .iter()
            .map(|p| match p {
                Piece::Orig(r) => r.len(),
                Piece::New(b) => b.len(),
            })
            .sum();
        let mut out = Vec::with_capacity(total);
        for p in &pieces.0 {
            match p {
                Piece::Orig(r) => out.extend_from_slice(buf.get(r.clone()).unwrap_or(&[])),
                Piece::New(b) => out.extend_from_slice(b),
            }
        }
        Bytes::from(out)
    }
}

enum Piece<'a> {
    Orig(Range<usize>),
    New(&'a [u8]),
}

/// The output as a list of slices in order; adjacent original ranges are merged.
#[derive(Default)]
struct Pieces<'a>(Vec<Piece<'a>>);

impl<'a> Pieces<'a> {
    fn push_orig(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        if let Some(Piece::Orig(last)) = self.0.last_mut() {
            if last.end == r.start {
                last.end = r.end;
                return;
            }
        }
        self.0.push(Piece::Orig(r));
    }

    fn push_new(&mut self, b: &'a [u8]) {
        if !b.is_empty() {
            self.0.push(Piece::New(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example;branch=z9hG4bK1;x=\"q,q\", SIP/2.0/UDP b.example;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example;lr>, <sip:u,ser@p2.example;lr>\r\n\
Record-Route: <sip:rr.example;lr>\r\n\
Subject: a folded\r\n\
\tsubject line\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
m: <sip:alice@192.0.2.1>\r\n\
X-Custom: one\r\n\
c: application/sdp\r\n\
l:  4 \r\n\
\r\n\
v=0\n";

    const RESPONSE: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/TCP h;branch=z9hG4bKx\r\n\
CSeq: 1 OPTIONS\r\n\
\r\n";

    fn parse(b: &[u8]) -> Message {
        Message::parse(b.to_vec()).unwrap()
    }

    /// Raw lines of the fields not selected by `touched`, in order.
    fn other_lines(m: &Message, touched: &dyn Fn(&Message, &HeaderField) -> bool) -> Vec<Vec<u8>> {
        m.fields()
            .iter()
            .filter(|f| !touched(m, f))
            .map(|f| m.slice(f.line_span).to_vec())
            .collect()
    }

    /// Applies `edit`, re-parses and checks that the fields `touched` does not select are
    /// byte-identical and in the same order, as is the body unless `body_changes`.
    fn check(
        base: &[u8],
        edit: impl FnOnce(&mut Editor<'_>),
        touched: &dyn Fn(&Message, &HeaderField) -> bool,
    ) -> Message {
        let m = parse(base);
        let mut ed = Editor::new(&m);
        edit(&mut ed);
        let out = Message::parse(ed.finish()).unwrap();
        assert_eq!(other_lines(&m, touched), other_lines(&out, touched));
        assert_eq!(out.start_line_span().start, 0);
        out
    }

    fn named(names: &'static [HeaderName]) -> impl Fn(&Message, &HeaderField) -> bool {
        move |_, f| names.contains(&f.name)
    }

    fn lines(m: &Message, name: HeaderName) -> Vec<&[u8]> {
        m.fields()
            .iter()
            .filter(|f| f.name == name)
            .map(|f| m.slice(f.line_span))
            .collect()
    }

    #[test]
    fn unmodified_is_the_same_buffer() {
        let mut padded = b"\r\n".to_vec();
        padded.extend_from_slice(INVITE);
        padded.extend_from_slice(b"trailing");
        let m = parse(&padded);
        let out = Editor::new(&m).finish();
        assert_eq!(&out[..], INVITE);
        assert_eq!(out.as_ptr(), m.as_bytes().as_ptr());
        // Operations that find nothing to do change nothing either.
        let r = parse(RESPONSE);
        let mut ed = Editor::new(&r);
        assert_eq!(ed.remove_routes(), 0);
        assert!(!ed.remove_first_route());
        assert_eq!(ed.remove_header("X-None"), Ok(0));
        assert_eq!(ed.finish().as_ptr(), r.as_bytes().as_ptr());
    }

    #[test]
    fn request_uri() {
        let out = check(
            INVITE,
            |e| {
                e.set_request_uri("sip:carol@chicago.com;transport=tcp")
                    .unwrap()
            },
            &|_, _| false,
        );
        assert_eq!(
            out.request_uri_str(),
            Some("sip:carol@chicago.com;transport=tcp")
        );
        assert_eq!(out.body(), b"v=0\n");
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        for bad in [
            "sip:a@b SIP/2.0\r\nX: y",
            "sip:a b",
            "",
            "nocolon",
            "sip:a@b?x=y",
        ] {
            assert!(ed.set_request_uri(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ed.set_request_uri("sip:a@b\r\n"),
            Err(EditError::ForbiddenByte { index: 7 })
        );
        assert_eq!(&ed.finish()[..], INVITE);
        let r = parse(RESPONSE);
        assert_eq!(
            Editor::new(&r).set_request_uri("sip:a@b"),
            Err(EditError::NotARequest)
        );
    }

    #[test]
    fn via_push_and_pop() {
        let out = check(
            INVITE,
            |e| {
                e.push_via("SIP/2.0/TCP sbc.example;branch=z9hG4bKnew")
                    .unwrap()
            },
            &named(&[HeaderName::Via]),
        );
        assert_eq!(out.fields()[0].name, HeaderName::Via);
        assert_eq!(
            out.slice(out.fields()[0].line_span),
            b"Via: SIP/2.0/TCP sbc.example;branch=z9hG4bKnew\r\n"
        );
        assert_eq!(out.header_count(), parse(INVITE).header_count() + 1);

        // The first Via field holds two values (one with a quoted comma): keep the second,
        // with the compact name as written.
        let via = named(&[HeaderName::Via]);
        let out = check(INVITE, |e| assert!(e.pop_via()), &via);
        assert_eq!(
            lines(&out, HeaderName::Via),
            vec![
                &b"v: SIP/2.0/UDP b.example;branch=z9hG4bK2\r\n"[..],
                b"Via: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n"
            ]
        );
        let out = check(INVITE, |e| assert!(e.pop_via() && e.pop_via()), &via);
        assert_eq!(
            lines(&out, HeaderName::Via),
            vec![&b"Via: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n"[..]]
        );
        let out = check(
            INVITE,
            |e| assert!(e.pop_via() && e.pop_via() && e.pop_via() && !e.pop_via()),
            &via,
        );
        assert_eq!(out.count(HeaderName::Via), 0);
        // Push then pop cancels out, and gives back the very same bytes.
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        ed.push_via("SIP/2.0/UDP x").unwrap();
        assert!(ed.pop_via());
        assert_eq!(ed.finish().as_ptr(), m.as_bytes().as_ptr());
        // Response without Via: push goes first.
        let out = check(
            b"SIP/2.0 100 Trying\r\nl: 0\r\n\r\n",
            |e| e.push_via("SIP/2.0/UDP x").unwrap(),
            &named(&[HeaderName::Via]),
        );
        assert_eq!(out.fields()[0].name, HeaderName::Via);
    }

    #[test]
    fn via_with_folded_second_value() {
        let base = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1 ,\r\n  SIP/2.0/UDP b\r\nl: 0\r\n\r\n";
        let out = check(base, |e| assert!(e.pop_via()), &named(&[HeaderName::Via]));
        assert_eq!(
            lines(&out, HeaderName::Via),
            vec![&b"Via: SIP/2.0/UDP b\r\n"[..]]
        );
    }

    #[test]
    fn routes() {
        let route = named(&[HeaderName::Route]);
        let out = check(
            INVITE,
            |e| e.add_route_front("<sip:new.example;lr>").unwrap(),
            &route,
        );
        assert_eq!(
            lines(&out, HeaderName::Route),
            vec![
                &b"Route: <sip:new.example;lr>\r\n"[..],
                b"Route: <sip:p1.example;lr>, <sip:u,ser@p2.example;lr>\r\n"
            ]
        );
        // The comma inside <...> is not a separator.
        let out = check(INVITE, |e| assert!(e.remove_first_route()), &route);
        assert_eq!(
            lines(&out, HeaderName::Route),
            vec![&b"Route: <sip:u,ser@p2.example;lr>\r\n"[..]]
        );
        let out = check(
            INVITE,
            |e| assert!(e.remove_first_route() && e.remove_first_route()),
            &route,
        );
        assert_eq!(out.count(HeaderName::Route), 0);
        let out = check(INVITE, |e| assert_eq!(e.remove_routes(), 1), &route);
        assert_eq!(out.count(HeaderName::Route), 0);
        // No Route yet: after the Vias.
        let out = check(RESPONSE, |e| e.add_route_front("<sip:r>").unwrap(), &route);
        assert_eq!(out.fields()[1].name, HeaderName::Route);
    }

    #[test]
    fn record_routes() {
        let rr = named(&[HeaderName::RecordRoute]);
        let out = check(
            INVITE,
            |e| e.add_record_route("<sip:sbc.example;lr>").unwrap(),
            &rr,
        );
        assert_eq!(
            lines(&out, HeaderName::RecordRoute),
            vec![
                &b"Record-Route: <sip:sbc.example;lr>\r\n"[..],
                b"Record-Route: <sip:rr.example;lr>\r\n"
            ]
        );
        let out = check(INVITE, |e| assert_eq!(e.remove_record_routes(), 1), &rr);
        assert_eq!(out.count(HeaderName::RecordRoute), 0);
        let out = check(
            RESPONSE,
            |e| e.add_record_route("<sip:sbc;lr>").unwrap(),
            &rr,
        );
        assert_eq!(out.fields()[1].name, HeaderName::RecordRoute);
        assert_eq!(out.fields()[0].name, HeaderName::Via);
    }

    #[test]
    fn contact_and_generic_headers() {
        let out = check(
            INVITE,
            |e| e.set_contact("<sip:sbc@203.0.113.1>").unwrap(),
            &named(&[HeaderName::Contact]),
        );
        assert_eq!(
            lines(&out, HeaderName::Contact),
            vec![&b"Contact: <sip:sbc@203.0.113.1>\r\n"[..]]
        );
        let m = parse(INVITE);
        let pos = m
            .fields()
            .iter()
            .position(|f| f.name == HeaderName::Contact);
        assert_eq!(
            out.fields()
                .iter()
                .position(|f| f.name == HeaderName::Contact),
            pos
        );

        let custom =
            |m: &Message, f: &HeaderField| m.slice(f.name_span).eq_ignore_ascii_case(b"x-custom");
        let out = check(
            INVITE,
            |e| e.set_header("x-CUSTOM", "two").unwrap(),
            &custom,
        );
        assert_eq!(out.header_by_name("X-Custom"), Some(&b"two"[..]));
        let out = check(
            INVITE,
            |e| assert_eq!(e.remove_header("X-Custom"), Ok(1)),
            &custom,
        );
        assert_eq!(out.header_by_name("X-Custom"), None);
        let out = check(
            INVITE,
            |e| e.add_header("X-Custom", "two").unwrap(),
            &custom,
        );
        assert_eq!(
            out.fields().last().map(|f| out.slice(f.line_span)),
            Some(&b"X-Custom: two\r\n"[..])
        );
        assert_eq!(out.count(HeaderName::Other), 2);
        // Known names are written canonically, whatever the spelling asked for.
        let out = check(
            RESPONSE,
            |e| e.set_header("k", "timer").unwrap(),
            &named(&[HeaderName::Supported]),
        );
        assert_eq!(
            lines(&out, HeaderName::Supported),
            vec![&b"Supported: timer\r\n"[..]]
        );
        let out = check(
            INVITE,
            |e| e.set_header(HeaderName::Subject, "plain").unwrap(),
            &named(&[HeaderName::Subject]),
        );
        assert_eq!(out.header(HeaderName::Subject), Some(&b"plain"[..]));
        assert_eq!(out.fields()[5].name, HeaderName::Subject);
        let out = check(
            INVITE,
            |e| assert_eq!(e.remove_header("m"), Ok(2)),
            &named(&[HeaderName::Contact]),
        );
        assert_eq!(out.count(HeaderName::Contact), 0);
    }

    #[test]
    fn injection_and_bad_names_are_refused() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        assert_eq!(
            ed.set_header("X-A", "ok\r\nEvil: 1"),
            Err(EditError::ForbiddenByte { index: 2 })
        );
        assert_eq!(
            ed.add_header("X-A", "ok\nEvil: 1"),
            Err(EditError::ForbiddenByte { index: 2 })
        );
        assert_eq!(
            ed.push_via("a\r"),
            Err(EditError::ForbiddenByte { index: 1 })
        );
        assert_eq!(
            ed.add_route_front("<sip:a>\0"),
            Err(EditError::ForbiddenByte { index: 7 })
        );
        assert_eq!(ed.add_record_route(" "), Err(EditError::EmptyValue));
        assert_eq!(ed.set_contact(""), Err(EditError::EmptyValue));
        assert_eq!(ed.set_header("X A", "v"), Err(EditError::BadName));
        assert_eq!(ed.set_header("X:A", "v"), Err(EditError::BadName));
        assert_eq!(ed.add_header("", "v"), Err(EditError::BadName));
        assert_eq!(
            ed.add_header(HeaderName::Other, "v"),
            Err(EditError::BadName)
        );
        assert_eq!(
            ed.set_header("Content-Length", "0"),
            Err(EditError::ContentLength)
        );
        assert_eq!(ed.add_header("l", "0"), Err(EditError::ContentLength));
        assert_eq!(
            ed.remove_header(HeaderName::ContentLength),
            Err(EditError::ContentLength)
        );
        assert_eq!(
            ed.set_body(Bytes::new(), Some("a\r\nb")),
            Err(EditError::ForbiddenByte { index: 1 })
        );
        assert_eq!(&ed.finish()[..], INVITE);
    }

    #[test]
    fn last_operation_on_a_field_wins() {
        let subj = named(&[HeaderName::Subject]);
        let out = check(
            INVITE,
            |e| {
                e.remove_header("Subject").unwrap();
                e.set_header("Subject", "back").unwrap();
            },
            &subj,
        );
        assert_eq!(
            lines(&out, HeaderName::Subject),
            vec![&b"Subject: back\r\n"[..]]
        );
        let out = check(
            INVITE,
            |e| {
                e.set_header("Subject", "gone").unwrap();
                e.remove_header("s").unwrap();
            },
            &subj,
        );
        assert_eq!(out.count(HeaderName::Subject), 0);
        let out = check(
            INVITE,
            |e| {
                e.set_header("Subject", "one").unwrap();
                e.set_header("Subject", "two").unwrap();
            },
            &subj,
        );
        assert_eq!(
            lines(&out, HeaderName::Subject),
            vec![&b"Subject: two\r\n"[..]]
        );
        assert_eq!(out.fields()[5].name, HeaderName::Subject);
    }

    #[test]
    fn folded_fields_stay_untouched() {
        let out = check(
            INVITE,
            |e| {
                e.set_request_uri("sip:x@y").unwrap();
                e.pop_via();
                e.add_header("X-B", "b").unwrap();
            },
            &named(&[HeaderName::Via, HeaderName::Other]),
        );
        assert_eq!(
            out.header(HeaderName::Subject),
            Some(&b"a folded\r\n\tsubject line"[..])
        );
    }

    #[test]
    fn body_replacement_updates_content_length() {
        let cl = named(&[HeaderName::ContentLength, HeaderName::ContentType]);
        // Compact `l:` with its odd spacing, replaced in place.
        let out = check(
            INVITE,
            |e| {
                e.set_body(Bytes::from_static(b"v=0\r\ns=-\r\n"), None)
                    .unwrap()
            },
            &cl,
        );
        assert_eq!(out.body(), b"v=0\r\ns=-\r\n");
        assert_eq!(
            lines(&out, HeaderName::ContentLength),
            vec![&b"l:  10 \r\n"[..]]
        );
        assert_eq!(
            out.header(HeaderName::ContentType),
            Some(&b"application/sdp"[..])
        );
        let out = check(
            INVITE,
            |e| {
                e.set_body(Bytes::from_static(b"<x/>"), Some("application/xml"))
                    .unwrap()
            },
            &cl,
        );
        assert_eq!(
            lines(&out, HeaderName::ContentType),
            vec![&b"Content-Type: application/xml\r\n"[..]]
        );
        assert_eq!(out.content_length(), Some(4));
        // Empty body.
        let out = check(INVITE, |e| e.set_body(Bytes::new(), None).unwrap(), &cl);
        assert_eq!((out.content_length(), out.body()), (Some(0), &b""[..]));
        // No Content-Length at all (a datagram): appended.
        let out = check(RESPONSE, |e| e.set_body(Bytes::new(), None).unwrap(), &cl);
        assert_eq!(
            lines(&out, HeaderName::ContentLength),
            vec![&b"Content-Length: 0\r\n"[..]]
        );
        let out = check(
            RESPONSE,
            |e| {
                e.set_body(Bytes::from_static(b"hello"), Some("text/plain"))
                    .unwrap()
            },
            &cl,
        );
        assert_eq!((out.content_length(), out.body()), (Some(5), &b"hello"[..]));
        // Folded Content-Length value, and the last of two bodies wins.
        let base = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 3\r\nX: y\r\n\r\nabc";
        let out = check(
            base,
            |e| {
                e.set_body(Bytes::from_static(b"12345"), None).unwrap();
                e.set_body(Bytes::from_static(b"1234567890ab"), None)
                    .unwrap();
            },
            &cl,
        );
        assert_eq!(
            lines(&out, HeaderName::ContentLength),
            vec![&b"Content-Length:\r\n 12\r\n"[..]]
        );
        assert_eq!(out.body(), b"1234567890ab");
    }

    #[test]
    fn bare_lf_messages_work() {
        let base = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b\nl: 0\n\n";
        let out = check(
            base,
            |e| {
                e.pop_via();
                e.add_header("X-Y", "1").unwrap();
            },
            &named(&[HeaderName::Via, HeaderName::Other]),
        );
        assert_eq!(
            out.as_bytes(),
            b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP b\nl: 0\nX-Y: 1\r\n\n"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Uri(&'static str),
        PushVia(&'static str),
        PopVia,
        RouteFront(&'static str),
        RemoveFirstRoute,
        RemoveRoutes,
        RecordRoute(&'static str),
        RemoveRecordRoutes,
        Contact(&'static str),
        Set(&'static str, &'static str),
        Remove(&'static str),
        Add(&'static str, &'static str),
        Body(&'static [u8], Option<&'static str>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop::sample::select(vec![
            "<sip:a@b;lr>",
            "x, y",
            "\"q,\" <sip:c>",
            "v\r\nInjected: 1",
            "",
            "SIP/2.0/UDP h;branch=z9hG4bK9",
        ]);
        let name = prop::sample::select(vec![
            "Via",
            "v",
            "Route",
            "Record-Route",
            "Contact",
            "X-A",
            "x-a",
            "Subject",
            "l",
            "Content-Type",
            "bad name",
            "CSeq",
        ]);
        prop_oneof![
            prop::sample::select(vec!["sip:n@m", "sip:bad uri", "tel:+1234"]).prop_map(Op::Uri),
            value.clone().prop_map(Op::PushVia),
            Just(Op::PopVia),
            value.clone().prop_map(Op::RouteFront),
            Just(Op::RemoveFirstRoute),
            Just(Op::RemoveRoutes),
            value.clone().prop_map(Op::RecordRoute),
            Just(Op::RemoveRecordRoutes),
            value.clone().prop_map(Op::Contact),
            (name.clone(), value.clone()).prop_map(|(n, v)| Op::Set(n, v)),
            name.clone().prop_map(Op::Remove),
            (name, value).prop_map(|(n, v)| Op::Add(n, v)),
            (
                prop::sample::select(vec![
                    &b""[..],
                    b"v=0\r\n",
                    b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\n\r\n"
                ]),
                prop::option::of(prop::sample::select(vec!["application/sdp", "a\nb"]))
            )
                .prop_map(|(b, c)| Op::Body(b, c)),
        ]
    }

    proptest! {
        #[test]
        fn random_edits_always_parse(
            base in prop::sample::select(vec![INVITE, RESPONSE, b"OPTIONS sip:a@b SIP/2.0\nv: a ,\n b\nContent-Length: 0\n\n"]),
            ops in prop::collection::vec(op(), 0..12),
        ) {
            let m = parse(base);
            let mut ed = Editor::new(&m);
            let mut body = m.body().to_vec();
            let mut has_cl = m.content_length().is_some();
            for o in &ops {
                match *o {
                    Op::Uri(u) => { let _ = ed.set_request_uri(u); }
                    Op::PushVia(v) => { let _ = ed.push_via(v); }
                    Op::PopVia => { ed.pop_via(); }
                    Op::RouteFront(v) => { let _ = ed.add_route_front(v); }
                    Op::RemoveFirstRoute => { ed.remove_first_route(); }
                    Op::RemoveRoutes => { ed.remove_routes(); }
                    Op::RecordRoute(v) => { let _ = ed.add_record_route(v); }
                    Op::RemoveRecordRoutes => { ed.remove_record_routes(); }
                    Op::Contact(v) => { let _ = ed.set_contact(v); }
                    Op::Set(n, v) => { let _ = ed.set_header(n, v); }
                    Op::Remove(n) => { let _ = ed.remove_header(n); }
                    Op::Add(n, v) => { let _ = ed.add_header(n, v); }
                    Op::Body(b, c) => {
                        if ed.set_body(Bytes::from_static(b), c).is_ok() {
                            body = b.to_vec();
                            has_cl = true;
                        }
                    }
                }
            }
            let out = ed.finish();
            let parsed = Message::parse(out.clone());
            prop_assert!(parsed.is_ok(), "{:?} -> {:?}", ops, String::from_utf8_lossy(&out));
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.body(), &body[..]);
            prop_assert_eq!(parsed.as_bytes().len(), out.len());
            prop_assert_eq!(parsed.content_length().is_some(), has_cl);
            prop_assert!(parsed.header_by_name("Injected").is_none());
        }
    }
}
