//! SCP's control lines (the legacy `rcp` protocol, as OpenSSH's `scp -O` speaks it):
//! parsed from untrusted input, so small, strict, and fuzzed (`fuzz_targets/scp_control`).

/// Longest control line accepted (OpenSSH's sink reads them into a 2048-byte buffer).
pub const MAX_LINE: usize = 4096;

/// One control line, without its final `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `C<mode> <size> <name>`: a file of `size` bytes follows.
    File { mode: u32, size: u64, name: Vec<u8> },
    /// `D<mode> 0 <name>`: entering a directory.
    Dir { mode: u32, name: Vec<u8> },
    /// `E`: leaving the directory.
    End,
    /// `T<mtime> <usec> <atime> <usec>`: times of the next file or directory (`-p`).
    Times { mtime: u64, atime: u64 },
    /// `\x01<message>` (a warning: the peer skipped something) or `\x02<message>` (fatal).
    Message { fatal: bool, text: Vec<u8> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("empty control line")]
    Empty,
    #[error("unknown control line type {0:#04x}")]
    UnknownType(u8),
    #[error("bad file mode")]
    BadMode,
    #[error("bad size")]
    BadSize,
    #[error("size out of range")]
    SizeOutOfRange,
    #[error("bad time")]
    BadTime,
    #[error("unexpected file name")]
    BadName,
    #[error("unexpected data after the control line")]
    Trailing,
}

/// Largest size taken: a file size is an `off_t`.
const MAX_SIZE: u64 = i64::MAX as u64;

impl Control {
    pub fn parse(line: &[u8]) -> Result<Control, ControlError> {
        let (&kind, rest) = line.split_first().ok_or(ControlError::Empty)?;
        match kind {
            b'C' | b'D' => {
                let (mode, rest) = mode(rest)?;
                let (size, rest) = number(rest, ControlError::BadSize)?;
                let rest = rest.strip_prefix(b" ").ok_or(ControlError::BadSize)?;
                let name = name(rest)?;
                if kind == b'C' {
                    if size > MAX_SIZE {
                        return Err(ControlError::SizeOutOfRange);
                    }
                    Ok(Control::File { mode, size, name })
                } else {
                    Ok(Control::Dir { mode, name })
                }
            }
            b'E' if rest.is_empty() => Ok(Control::End),
            b'E' => Err(ControlError::Trailing),
            b'T' => {
                let (mtime, rest) = number(rest, ControlError::BadTime)?;
                let rest = rest.strip_prefix(b" ").ok_or(ControlError::BadTime)?;
                let (_, rest) = number(rest, ControlError::BadTime)?;
                let rest = rest.strip_prefix(b" ").ok_or(ControlError::BadTime)?;
                let (atime, rest) = number(rest, ControlError::BadTime)?;
                let rest = rest.strip_prefix(b" ").ok_or(ControlError::BadTime)?;
                let (_, rest) = number(rest, ControlError::BadTime)?;
                if !rest.is_empty() {
                    return Err(ControlError::Trailing);
                }
                Ok(Control::Times { mtime, atime })
            }
            1 | 2 => Ok(Control::Message {
                fatal: kind == 2,
                text: rest.to_vec(),
            }),
            other => Err(ControlError::UnknownType(other)),
        }
    }

    /// The line as sent, with its `\n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = match self {
            Control::File { mode, size, name } => {
                let mut l = format!("C{:04o} {size} ", mode & 0o7777).into_bytes();
                l.extend_from_slice(name);
                l
            }
            Control::Dir { mode, name } => {
                let mut l = format!("D{:04o} 0 ", mode & 0o7777).into_bytes();
                l.extend_from_slice(name);
                l
            }
            Control::End => b"E".to_vec(),
            Control::Times { mtime, atime } => format!("T{mtime} 0 {atime} 0").into_bytes(),
            Control::Message { fatal, text } => {
                let mut l = vec![if *fatal { 2 } else { 1 }];
                l.extend(text.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
                l
            }
        };
        out.push(b'\n');
        out
    }
}

/// Four octal digits and a space (as OpenSSH's sink: exactly four).
fn mode(s: &[u8]) -> Result<(u32, &[u8]), ControlError> {
    if s.len() < 5 || s[4] != b' ' {
        return Err(ControlError::BadMode);
    }
    let mut mode = 0u32;
    for &d in &s[..4] {
        if !(b'0'..=b'7').contains(&d) {
            return Err(ControlError::BadMode);
        }
        mode = mode << 3 | u32::from(d - b'0');
    }
    Ok((mode, &s[5..]))
}

/// A decimal number (at least one digit, at most 20) and what follows it.
fn number(s: &[u8], err: ControlError) -> Result<(u64, &[u8]), ControlError> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return Err(err);
    }
    let mut n: u64 = 0;
    for &d in &s[..digits] {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(ControlError::SizeOutOfRange)?;
    }
    Ok((n, &s[digits..]))
}

/// One path component: not empty, not `.` or `..`, no `/`, NUL or newline.
fn name(s: &[u8]) -> Result<Vec<u8>, ControlError> {
    if s.is_empty() || s == b"." || s == b".." || s.iter().any(|&b| matches!(b, b'/' | 0 | b'\n')) {
        return Err(ControlError::BadName);
    }
    Ok(s.to_vec())
}
