//! Stop sequences over streamed text: hold back only what could still become a stop.

/// Scans text as it streams in for the first occurrence of any stop sequence.
///
/// Text is released as soon as it can no longer be part of a stop sequence, so a stream
/// never shows a stop sequence or anything after it (OpenAI's `stop` semantics: the
/// returned text ends just before the stop sequence).
#[derive(Debug)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    /// Received, not yet released: always a (possibly empty) proper prefix of some stop.
    held: String,
}

/// What [`StopScanner::push`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Text that may be shown now.
    pub release: String,
    /// A stop sequence was found; `release` ends right before it and nothing more follows.
    pub stopped: bool,
}

impl StopScanner {
    /// A scanner for `stops`; empty strings are ignored.
    pub fn new(stops: &[String]) -> Self {
        StopScanner { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    /// Adds `text` and returns what can be released.
    pub fn push(&mut self, text: &str) -> Scan {
        self.held.push_str(text);
        // Earliest occurrence of any stop. Text released earlier cannot contain the start
        // of an occurrence: anything that could have started one was held back.
        let found = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = found {
            let release = self.held[..at].to_owned();
            self.held.clear();
            return Scan { release, stopped: true };
        }
        // Hold back the longest suffix that is a proper prefix of some stop.
        let keep_from = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let suffix = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(suffix))
            })
            .unwrap_or(self.held.len());
        let release = self.held[..keep_from].to_owned();
        self.held.drain(..keep_from);
        Scan { release, stopped: false }
    }

    /// Releases whatever is held back (the stream ended without a stop sequence).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks`; returns the released pieces (one per chunk, then the final flush)
    /// and whether a stop was hit.
    fn check(stops: &[&str], chunks: &[&str], want_pieces: &[&str], want_stopped: bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut scanner = StopScanner::new(&stops);
        let mut pieces = Vec::new();
        let mut stopped = false;
        for chunk in chunks {
            let scan = scanner.push(chunk);
            pieces.push(scan.release);
            if scan.stopped {
                stopped = true;
                break;
            }
        }
        if !stopped {
            pieces.push(scanner.finish());
        }
        assert_eq!(pieces, want_pieces, "stops {stops:?} chunks {chunks:?}");
        assert_eq!(stopped, want_stopped, "stops {stops:?} chunks {chunks:?}");
    }

    #[test]
    fn scanner() {
        // No stops: everything released at once.
        check(&[], &["ab", "cd"], &["ab", "cd", ""], false);
        // Stop inside one chunk.
        check(&["\n"], &["ab\ncd"], &["ab"], true);
        // Stop split across chunks: the partial match is held, then dropped.
        check(&["END"], &["abE", "N", "Dx"], &["ab", "", ""], true);
        // A partial match that turns out not to be one is released.
        check(&["END"], &["abE", "Nx"], &["ab", "ENx", ""], false);
        // Held text is released at the end of the stream.
        check(&["END"], &["abEN"], &["ab", "EN"], false);
        // The earliest of several stops wins.
        check(&["cd", "b"], &["abcd"], &["a"], true);
        // Stop at the very start.
        check(&["x"], &["xyz"], &[""], true);
        // Multi-byte characters: holding back never splits a char.
        check(&["éz"], &["aé", "b"], &["a", "éb", ""], false);
        check(&["éz"], &["aé", "z"], &["a", ""], true);
        // Empty stop strings are ignored.
        check(&[""], &["ab"], &["ab", ""], false);
    }
}
