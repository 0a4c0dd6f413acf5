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
    let bits = AVG_CHUNK.ilog2();
    let level = Normalization::Level1.bits();
    let (mask_s, mask_l) = (
        MASKS[(bits + level) as usize],
        MASKS[(bits - level) as usize],
    );
    let gear = Box::new(*gear);
    let gear_ls = Box::new(gear.map(|entry| entry << 1));
    let mut window = Window {
        reader,
        data: Vec::new(),
        start: 0,
        eof: false,
    };
    std::iter::from_fn(move || {
        if let Err(e) = window.fill() {
            window.eof = true;
            window.data.clear();
            window.start = 0;
            return Some(Err(e));
        }
        let rest = &window.data[window.start..];
        if rest.is_empty() {
            return None;
        }
        let (_, count) = cut_gear(
            rest,
            MIN_CHUNK as usize,
            AVG_CHUNK as usize,
            MAX,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            &gear,
            &gear_ls,
        );
        let chunk = rest[..count].to_vec();
        window.start += count;
        Some(Ok(chunk))
    })
}

/// What has been read and not yet cut: `data[start..]`.
struct Window<R> {
    reader: R,
    data: Vec<u8>,
    start: usize,
    eof: bool,
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
}
