//! Typed header values decoded on demand from the header index.
//!
//! A type implementing [`TypedHeader`] decodes one value from a [`Cursor`]. List headers (Via,
//! Contact, Route, ...) hold several comma-separated values per field and may repeat; the
//! decoder of a list header stops before a top-level `,` and [`TypedIter`] walks the values of
//! every field with that name. Single-value headers must consume the whole field.

use std::marker::PhantomData;

use crate::error::{ErrorKind, ParseError, Result};
use crate::lex::Cursor;
use crate::message::{HeaderField, Message};
use crate::name::HeaderName;

pub trait TypedHeader<'a>: Sized {
    /// The header this type decodes.
    const NAME: HeaderName;
    /// True when a field may hold several comma-separated values.
    const LIST: bool;
    /// The error kind for a value that does not parse and for trailing characters.
    const ERROR: ErrorKind;
    /// Decodes one value at the cursor (white space before it already skipped). List decoders
    /// stop before a top-level `,`; others must leave only white space.
    fn decode(c: &mut Cursor<'a>) -> Result<Self>;

    /// Decodes a standalone value (for tests and tools). Offsets are relative to `s`.
    fn parse_value(s: &'a str) -> Result<Self> {
        let mut c = Cursor::new(s, 0, crate::Limits::DEFAULT.max_params);
        c.skip_ws();
        let v = Self::decode(&mut c)?;
        c.skip_ws();
        if !c.at_end() {
            return Err(c.err(Self::ERROR));
        }
        Ok(v)
    }
}

impl Message {
    /// The first value of the first `T` header: `None` when absent, `Some(Err)` when malformed.
    pub fn typed<'a, T: TypedHeader<'a>>(&'a self) -> Option<Result<T>> {
        self.typed_all::<T>().next()
    }

    /// Every value of every `T` header, in order. After an error the iterator ends.
    pub fn typed_all<'a, T: TypedHeader<'a>>(&'a self) -> TypedIter<'a, T> {
        TypedIter {
            msg: self,
            fields: self.fields().iter(),
            cur: None,
            values: 0,
            done: false,
            _t: PhantomData,
        }
    }

    /// Decodes every value of every `T` header, failing on the first error.
    pub fn typed_vec<'a, T: TypedHeader<'a>>(&'a self) -> Result<Vec<T>> {
        self.typed_all::<T>().collect()
    }
}

pub struct TypedIter<'a, T> {
    msg: &'a Message,
    fields: std::slice::Iter<'a, HeaderField>,
    cur: Option<Cursor<'a>>,
    values: usize,
    done: bool,
    _t: PhantomData<T>,
}

impl<'a, T: TypedHeader<'a>> TypedIter<'a, T> {
    fn step(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(c) = self.cur.as_mut() {
                c.skip_ws();
                if c.at_end() {
                    self.cur = None;
                    continue;
                }
                self.values += 1;
                if self.values > self.msg.max_values() {
                    return Some(Err(c.err(ErrorKind::TooManyValues)));
                }
                let v = match T::decode(c) {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                c.skip_ws();
                if c.at_end() {
                    self.cur = None;
                } else if T::LIST && c.eat(b',') {
                    // `Via: a,` leaves nothing after the comma: that is malformed too.
                    c.skip_ws();
                    if c.at_end() {
                        return Some(Err(c.err(T::ERROR)));
                    }
                } else {
                    return Some(Err(c.err(T::ERROR)));
                }
                return Some(Ok(v));
            }
            let f = self.fields.find(|f| f.name == T::NAME)?;
            // `max_values` bounds the values of one field, not of the message.
            self.values = 0;
            match self.msg.cursor(f) {
                Ok(c) => {
                    if c.at_end() {
                        // An empty value is an error for every typed header we decode.
                        return Some(Err(ParseError::new(T::ERROR, c.base())));
                    }
                    self.cur = Some(c)
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<'a, T: TypedHeader<'a>> Iterator for TypedIter<'a, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        let r = self.step();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}
