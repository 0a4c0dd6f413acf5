//! Content-defined chunking (FastCDC 2020): boundaries follow content, so an insertion early
//! in a file changes only the chunks around it and the rest deduplicate. The gear table is
//! keyed by a seed from the library's key (issue 14): without it, anyone who has a file
//! could compute its chunk sizes and look for that sequence among a library's blobs.

use std::io::Read;

/// No chunk is smaller than this, except a whole file that is.
pub const MIN_CHUNK: u32 = 256 * 1024;
pub const AVG_CHUNK: u32 = 1024 * 1024;
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;

/// Splits everything `reader` yields into chunks, with boundaries keyed by `seed`.
pub fn chunks<R: Read>(reader: R, seed: u64) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    fastcdc::v2020::StreamCDC::with_level_and_seed(
        reader,
        MIN_CHUNK,
        AVG_CHUNK,
        MAX_CHUNK,
        fastcdc::v2020::Normalization::Level1,
        seed,
    )
    .map(|chunk| {
        chunk.map(|c| c.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SEED: u64 = 0x5eed;
    /// The lengths of the chunks of the shared vector (20 MiB of BLAKE3 output) under the
    /// shared seed.
    const VECTOR_LENGTHS: [usize; 16] = [
        543387, 689230, 1386383, 1227877, 517533, 1107781, 2103167, 2050635, 1116068, 1375408,
        1156037, 1819159, 685781, 402253, 1966465, 2824356,
    ];

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    #[test]
    fn small_file_is_one_chunk_and_empty_file_none() {
        let data = random(1000, 1);
        let parts: Vec<_> = chunks(&data[..], SEED).map(Result::unwrap).collect();
        assert_eq!(parts, vec![data]);
        assert_eq!(chunks(&b""[..], SEED).count(), 0);
    }

    #[test]
    fn chunks_respect_bounds_and_reassemble() {
        let data = random(12 << 20, 2);
        let parts: Vec<_> = chunks(&data[..], SEED).map(Result::unwrap).collect();
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
        let before: Vec<_> = chunks(&data[..], SEED).map(Result::unwrap).collect();
        let after: Vec<_> = chunks(&edited[..], SEED).map(Result::unwrap).collect();
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
        let lengths: Vec<usize> = chunks(&data[..], 0xfedc_ba98_7654_3210)
            .map(|c| c.unwrap().len())
            .collect();
        assert_eq!(lengths, VECTOR_LENGTHS);
    }

    #[test]
    fn boundaries_depend_on_the_seed() {
        let data = random(16 << 20, 4);
        let sizes =
            |seed| -> Vec<usize> { chunks(&data[..], seed).map(|c| c.unwrap().len()).collect() };
        assert_eq!(sizes(SEED), sizes(SEED));
        assert_ne!(sizes(SEED), sizes(SEED + 1));
    }
}
