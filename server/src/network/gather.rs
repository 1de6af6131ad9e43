//! Plans the writes of completed responses: consecutive byte chunks, across responses, become
//! one vectored write; file ranges keep their place in the stream and go out by splice.
//!
//! The writer gathers whole responses, in order, while [`Gather::is_full`] is false, so one
//! syscall carries many small responses (a pipelining producer's acknowledgements) while no
//! single write grows past [`WRITEV_IOVECS_MAX`] buffers or [`WRITEV_BYTES_MAX`] bytes.

use bytes::Bytes;
use strom_engine::io::WRITEV_IOVECS_MAX;
use strom_engine::log::FileRange;

use super::response::Chunk;

/// Most bytes one vectored write carries: a whole socket send buffer's worth and more, and
/// small enough that a large batch of responses is sent in steps rather than held back.
pub const WRITEV_BYTES_MAX: usize = 1 << 20;
/// Responses stop being gathered once this many bytes (buffers and file ranges) wait: the
/// next response is then written in the next round.
pub const GATHER_BYTES_MAX: usize = WRITEV_BYTES_MAX;

/// One step of sending a gathered batch.
#[derive(Debug)]
pub enum Piece {
    /// Buffers sent by one vectored write: at most [`WRITEV_IOVECS_MAX`] of them, and at most
    /// [`WRITEV_BYTES_MAX`] bytes unless a single buffer is larger.
    Bytes(Vec<Bytes>),
    /// A file range spliced to the socket.
    File(FileRange),
}

/// The pieces of the responses gathered so far, in stream order.
#[derive(Debug, Default)]
pub struct Gather {
    pieces: Vec<Piece>,
    /// Bytes in the open (last) `Piece::Bytes`.
    open_run_bytes: usize,
    /// Buffers over all pieces.
    iovecs: usize,
    /// Bytes over all pieces (buffers and file ranges).
    total_bytes: usize,
    has_files: bool,
}

impl Gather {
    /// Whether no further response should join this batch.
    pub fn is_full(&self) -> bool {
        self.iovecs >= WRITEV_IOVECS_MAX || self.total_bytes >= GATHER_BYTES_MAX
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Whether any piece is spliced from a file (the writer then corks the socket, so the
    /// frame headers written around splices do not leave as small packets of their own).
    pub fn has_files(&self) -> bool {
        self.has_files
    }

    /// Appends the chunks of one response frame.
    pub fn push_frame(&mut self, chunks: Vec<Chunk>) {
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(bytes) => self.push_bytes(bytes),
                Chunk::File(range) => {
                    if range.len_bytes == 0 {
                        continue;
                    }
                    self.total_bytes += range.len_bytes;
                    self.has_files = true;
                    self.pieces.push(Piece::File(range));
                }
            }
        }
    }

    fn push_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let len_bytes = bytes.len();
        self.total_bytes += len_bytes;
        self.iovecs += 1;
        if let Some(Piece::Bytes(run)) = self.pieces.last_mut() {
            let fits = run.len() < WRITEV_IOVECS_MAX
                && self.open_run_bytes + len_bytes <= WRITEV_BYTES_MAX;
            if fits {
                run.push(bytes);
                self.open_run_bytes += len_bytes;
                return;
            }
        }
        self.pieces.push(Piece::Bytes(vec![bytes]));
        self.open_run_bytes = len_bytes;
    }

    /// The pieces in stream order; the gather is empty afterwards.
    pub fn take(&mut self) -> Vec<Piece> {
        let pieces = std::mem::take(&mut self.pieces);
        *self = Gather::default();
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_engine::io::SharedFile;

    fn bytes(len_bytes: usize) -> Chunk {
        Chunk::Bytes(Bytes::from(vec![7u8; len_bytes]))
    }

    fn file_range(file: &SharedFile, len_bytes: usize) -> Chunk {
        Chunk::File(FileRange {
            file: file.clone(),
            position: 0,
            len_bytes,
            first_offset: 0,
            next_offset: 1,
        })
    }

    fn shape(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|piece| match piece {
                Piece::Bytes(run) => {
                    format!("bytes{:?}", run.iter().map(Bytes::len).collect::<Vec<_>>())
                }
                Piece::File(range) => format!("file{}", range.len_bytes),
            })
            .collect()
    }

    fn temp_file() -> (tempfile::TempDir, SharedFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("segment")).expect("create");
        (dir, SharedFile::new(file))
    }

    #[test]
    fn byte_chunks_of_several_responses_become_one_write() {
        let mut gather = Gather::default();
        gather.push_frame(vec![bytes(10)]);
        gather.push_frame(vec![bytes(20), bytes(5)]);
        gather.push_frame(vec![bytes(0)]);
        assert!(!gather.has_files());
        assert_eq!(shape(&gather.take()), ["bytes[10, 20, 5]"]);
        assert!(gather.is_empty());
    }

    #[test]
    fn file_ranges_keep_their_place_between_byte_writes() {
        let (_dir, file) = temp_file();
        let mut gather = Gather::default();
        gather.push_frame(vec![bytes(8), file_range(&file, 100), bytes(4)]);
        gather.push_frame(vec![bytes(6), file_range(&file, 0), file_range(&file, 50)]);
        assert!(gather.has_files());
        assert_eq!(
            shape(&gather.take()),
            ["bytes[8]", "file100", "bytes[4, 6]", "file50"]
        );
        assert!(!gather.has_files(), "take resets the batch");
    }

    #[test]
    fn a_write_holds_at_most_iov_max_buffers() {
        let mut gather = Gather::default();
        gather.push_frame((0..WRITEV_IOVECS_MAX + 3).map(|_| bytes(1)).collect());
        assert!(gather.is_full());
        let pieces = gather.take();
        let runs: Vec<usize> = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Bytes(run) => run.len(),
                Piece::File(_) => 0,
            })
            .collect();
        assert_eq!(runs, [WRITEV_IOVECS_MAX, 3]);
    }

    #[test]
    fn a_write_holds_at_most_its_byte_limit_unless_one_buffer_is_larger() {
        let mut gather = Gather::default();
        let half = WRITEV_BYTES_MAX / 2;
        gather.push_frame(vec![bytes(half), bytes(half), bytes(1)]);
        gather.push_frame(vec![bytes(WRITEV_BYTES_MAX + 1), bytes(1)]);
        let expected = [
            format!("bytes[{half}, {half}]"),
            "bytes[1]".to_string(),
            format!("bytes[{}]", WRITEV_BYTES_MAX + 1),
            "bytes[1]".to_string(),
        ];
        assert_eq!(shape(&gather.take()), expected);
    }

    #[test]
    fn gathering_stops_at_the_byte_limit_counting_file_ranges() {
        let (_dir, file) = temp_file();
        let mut gather = Gather::default();
        gather.push_frame(vec![bytes(100), file_range(&file, GATHER_BYTES_MAX - 101)]);
        assert!(!gather.is_full());
        gather.push_frame(vec![bytes(1)]);
        assert!(gather.is_full());
    }
}
