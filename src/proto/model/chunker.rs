//! Content-defined chunking (FastCDC 2020): boundaries follow content, so an insertion early
//! in a file changes only the chunks around it and the rest deduplicate. The gear table comes
//! whole from the library's epoch key (issues 14 and 26): without it, anyone who has a file
//! could compute its chunk sizes and look for that sequence among a library's blobs, and no
//! entry of it tells anything of another.

use std::io::Read;

use fastcdc::v2020::{cut_gear, Normalization, MASKS};

/// No chunk is smaller than this, except a whole file that is.
pub const MIN_CHUNK: u32 = 256 * 1024;
pub const AVG_CHUNK: u32 = 1024 * 1024;
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;

const MAX: usize = MAX_CHUNK as usize;
/// The window's room before its first read.
const FIRST_READ: usize = 64 * 1024;

/// Splits everything `reader` yields into chunks, with boundaries keyed by the gear table
/// `gear` (`EpochKeys::chunker_gear`): FastCDC 2020's cuts at normalization level 1 (the
/// fastcdc crate's `cut_gear`, whose shifted table is each entry shifted left by one), read
/// through a window of our own. The crate's `StreamCDC` keeps a zeroed buffer of the largest chunk and moves all of it after
/// every chunk: for a backup of many small files that was half of the client's processor
/// time in `memset` and `memmove`. Here the window grows only as far as the data does, and
/// is moved down only once a chunk's worth was taken from it.
pub fn chunks<R: Read>(
    reader: R,
    gear: &[u64; 256],
) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    let mut chunker = Chunker::new(reader, gear);
    std::iter::from_fn(move || chunker.next_chunk())
}

/// A chunk of a file: bytes read, or a run of zeros cut inside one of its holes.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Data(Vec<u8>),
    Zeros(usize),
}

/// The chunks of a file, as [`chunks`] cuts them, without reading its holes: a chunk that
/// lies wholly in a hole is given as [`Piece::Zeros`]. Inside a long run of zeros every
/// chunk is alike (the rolling hash forgets all but the last 64 bytes, and starts again at
/// each cut), so the cuts are those of reading the zeros, and a sparse file of terabytes
/// is cut in moments.
pub fn file_chunks<'a>(
    file: &'a std::fs::File,
    gear: &[u64; 256],
) -> impl Iterator<Item = std::io::Result<Piece>> + 'a {
    let mut chunker = Chunker::new(Positioned { file, at: 0 }, gear);
    let mut zero_chunk: Option<usize> = None;
    std::iter::from_fn(move || {
        let at = chunker.window.reader.at - chunker.window.held() as u64;
        let hole = match hole_at(file, at) {
            Ok(hole) => hole,
            Err(e) => return Some(Err(e)),
        };
        if hole >= MIN_CHUNK as u64 {
            let zeros = *zero_chunk.get_or_insert_with(|| chunker.cut(&vec![0; MAX]));
            if hole >= zeros as u64 {
                chunker.window.skip_to(at + zeros as u64);
                return Some(Ok(Piece::Zeros(zeros)));
            }
        }
        chunker.next_chunk().map(|chunk| chunk.map(Piece::Data))
    })
}

/// How many bytes from `at` lie in a hole of `file` (0 in data, or at or past its end).
fn hole_at(file: &std::fs::File, at: u64) -> std::io::Result<u64> {
    use rustix::fs::SeekFrom;
    match rustix::fs::seek(file, SeekFrom::Data(at)) {
        Ok(data) => Ok(data.saturating_sub(at)),
        // No data from `at` on: a hole to the end, if `at` is before it.
        Err(rustix::io::Errno::NXIO) => Ok(file.metadata()?.len().saturating_sub(at)),
        // A file system that cannot tell: everything is data.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Reads a file from a position that can be moved.
struct Positioned<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl Read for Positioned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Window<Positioned<'_>> {
    /// Goes on reading at `at`, past what the window held.
    fn skip_to(&mut self, at: u64) {
        self.data.clear();
        self.start = 0;
        self.eof = false;
        self.reader.at = at;
    }
}

struct Chunker<R> {
    window: Window<R>,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    masks: (u64, u64),
}

impl<R: Read> Chunker<R> {
    fn new(reader: R, gear: &[u64; 256]) -> Self {
        let bits = AVG_CHUNK.ilog2();
        let level = Normalization::Level1.bits();
        Self {
            window: Window {
                reader,
                data: Vec::new(),
                start: 0,
                eof: false,
            },
            gear: Box::new(*gear),
            gear_ls: Box::new(gear.map(|entry| entry << 1)),
            masks: (
                MASKS[(bits + level) as usize],
                MASKS[(bits - level) as usize],
            ),
        }
    }

    /// Where the first chunk of `data` ends.
    fn cut(&self, data: &[u8]) -> usize {
        let (mask_s, mask_l) = self.masks;
        cut_gear(
            data,
            MIN_CHUNK as usize,
            AVG_CHUNK as usize,
            MAX,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }

    fn next_chunk(&mut self) -> Option<std::io::Result<Vec<u8>>> {
        if let Err(e) = self.window.fill() {
            self.window.eof = true;
            self.window.data.clear();
            self.window.start = 0;
            return Some(Err(e));
        }
        let rest = &self.window.data[self.window.start..];
        if rest.is_empty() {
            return None;
        }
        let count = self.cut(rest);
        let chunk = rest[..count].to_vec();
        self.window.start += count;
        Some(Ok(chunk))
    }
}

/// What has been read and not yet cut: `data[start..]`.
struct Window<R> {
    reader: R,
    data: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<R> Window<R> {
    /// The bytes read and not yet cut.
    fn held(&self) -> usize {
        self.data.len() - self.start
    }
}

impl<R: Read> Window<R> {
    /// Reads until the window holds a largest chunk's worth, or the reader ends.
    fn fill(&mut self) -> std::io::Result<()> {
        let held = self.data.len() - self.start;
        if self.eof || held >= MAX {
            return Ok(());
        }
        // Moved down at most once per chunk's worth taken, and never more than a chunk.
        if self.start >= MAX {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let want = (MAX - held) as u64;
        // Room for a small file whole, so it takes one read and one to see its end
        // (`read_to_end` alone starts with 32 bytes and doubles: ten reads a small file).
        self.data.reserve((want as usize).min(FIRST_READ));
        let read = (&mut self.reader).take(want).read_to_end(&mut self.data)?;
        if (read as u64) < want {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SEED: u64 = 0x5eed;
    /// The lengths of the chunks of the shared vector (20 MiB of BLAKE3 output) under the
    /// gear table of the shared epoch key.
    const VECTOR_LENGTHS: [usize; 16] = [
        2144303, 325426, 1381677, 775841, 1188234, 1234699, 2143424, 1627125, 1501023, 1142422,
        1791703, 500990, 1787102, 1646915, 528320, 1252316,
    ];

    /// The fastcdc crate's own table keyed by `seed`, to compare the window with `StreamCDC`.
    fn seeded(seed: u64) -> [u64; 256] {
        *fastcdc::v2020::get_gear_with_seed(seed).0
    }

    fn keyed(byte: u8) -> Box<[u64; 256]> {
        use crate::crypto::{EpochKeys, SymmetricKey};
        EpochKeys::derive(1, SymmetricKey::from_bytes([byte; 32])).chunker_gear
    }

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    /// A reader that hands out at most `step` bytes a call, as pipes and network files do.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn cuts_are_the_fastcdc_crates_at_every_size_and_read_size() {
        let data = random(13 * MAX + 12_345, 7);
        let min = MIN_CHUNK as usize;
        for len in [
            0,
            1,
            min - 1,
            min,
            min + 1,
            MAX - 1,
            MAX,
            MAX + 1,
            3 * MAX + 7,
            data.len(),
        ] {
            let expected: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::with_level_and_seed(
                &data[..len],
                MIN_CHUNK,
                AVG_CHUNK,
                MAX_CHUNK,
                Normalization::Level1,
                SEED,
            )
            .map(|c| c.unwrap().data)
            .collect();
            for step in [len.max(1), 65_536, 1000] {
                let reader = Trickle {
                    data: &data[..len],
                    step,
                };
                let ours: Vec<Vec<u8>> =
                    chunks(reader, &seeded(SEED)).map(Result::unwrap).collect();
                assert_eq!(ours, expected, "{len} bytes read {step} at a time");
            }
        }
    }

    #[test]
    fn small_file_is_one_chunk_and_empty_file_none() {
        let data = random(1000, 1);
        let gear = keyed(1);
        let parts: Vec<_> = chunks(&data[..], &gear).map(Result::unwrap).collect();
        assert_eq!(parts, vec![data]);
        assert_eq!(chunks(&b""[..], &gear).count(), 0);
    }

    #[test]
    fn chunks_respect_bounds_and_reassemble() {
        let data = random(12 << 20, 2);
        let parts: Vec<_> = chunks(&data[..], &keyed(1)).map(Result::unwrap).collect();
        assert!(parts.len() > 3);
        for part in &parts[..parts.len() - 1] {
            assert!(part.len() >= MIN_CHUNK as usize && part.len() <= MAX_CHUNK as usize);
        }
        assert_eq!(parts.concat(), data);
    }

    #[test]
    fn insertion_shifts_only_nearby_chunks() {
        let data = random(8 << 20, 3);
        let mut edited = b"inserted".to_vec();
        edited.extend_from_slice(&data);
        let gear = keyed(1);
        let before: Vec<_> = chunks(&data[..], &gear).map(Result::unwrap).collect();
        let after: Vec<_> = chunks(&edited[..], &gear).map(Result::unwrap).collect();
        let shared = after.iter().filter(|c| before.contains(c)).count();
        assert!(
            shared >= before.len() - 2,
            "{shared} of {} chunks shared",
            before.len()
        );
    }

    /// The web page cuts files with a chunker of its own (web/src/chunker.js) that must cut
    /// where this one does; its test (web/test/chunker.test.mjs) checks the same lengths.
    #[test]
    fn cuts_of_the_shared_vector_are_the_ones_the_page_makes() {
        let mut data = vec![0u8; 20 << 20];
        blake3::Hasher::new()
            .update(b"ibackup chunker vector")
            .finalize_xof()
            .fill(&mut data);
        let lengths: Vec<usize> = chunks(&data[..], &keyed(0xfe))
            .map(|c| c.unwrap().len())
            .collect();
        assert_eq!(lengths, VECTOR_LENGTHS);
    }

    #[test]
    fn boundaries_depend_on_the_epoch_key() {
        let data = random(16 << 20, 4);
        let sizes = |key| -> Vec<usize> {
            chunks(&data[..], &keyed(key))
                .map(|c| c.unwrap().len())
                .collect()
        };
        assert_eq!(sizes(1), sizes(1));
        assert_ne!(sizes(1), sizes(2));
    }

    #[test]
    fn a_sparse_files_holes_are_cut_as_reading_them_would() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = std::fs::File::create(&path).unwrap();
        // Data, a long hole, data, a hole shorter than a chunk, zeros written as data, data,
        // and a hole to the end.
        let mut at = 0u64;
        for (gap, data) in [
            (0u64, random(1 << 20, 3)),
            (40 << 20, random(3 << 20, 4)),
            (100_000, vec![0u8; 9 << 20]),
            (0, random(500_000, 5)),
        ] {
            at += gap;
            file.write_all_at(&data, at).unwrap();
            at += data.len() as u64;
        }
        file.set_len(at + (30 << 20)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        for gear in [keyed(1), keyed(2), Box::new(seeded(SEED))] {
            let whole = std::fs::File::open(&path).unwrap();
            let read: Vec<Vec<u8>> = chunks(&whole, &gear).map(Result::unwrap).collect();
            let pieces: Vec<Piece> = file_chunks(&file, &gear).map(Result::unwrap).collect();
            let zeros = pieces
                .iter()
                .filter(|p| matches!(p, Piece::Zeros(_)))
                .count();
            let expanded: Vec<Vec<u8>> = pieces
                .into_iter()
                .map(|piece| match piece {
                    Piece::Data(data) => data,
                    Piece::Zeros(len) => vec![0; len],
                })
                .collect();
            assert_eq!(expanded.len(), read.len());
            assert!(expanded == read, "the same cuts and bytes");
            // Where the file system keeps holes (ext4, xfs, tmpfs), most of 70 MiB of them
            // were not read.
            if rustix::fs::seek(&file, rustix::fs::SeekFrom::Hole(0)).unwrap() < at {
                assert!(zeros >= 10, "{zeros} chunks taken from holes");
            }
        }
    }
}
