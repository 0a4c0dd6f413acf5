//! Large writes are put into their stage files by a thread of their own.
//!
//! One thread reads every FUSE request. A 1 MiB write request kept it busy for a few hundred
//! microseconds copying into the stage file, while the writer's next call (the kernel asks
//! for `security.capability` before each `write`) waited behind it. Here the request's
//! bytes are copied into a buffer and queued, and the reading thread goes on; this thread
//! writes them in order and only then answers the request. The kernel sends `flush`,
//! `fsync`, truncation and `release` only once every write request of the file was
//! answered, so those still see all the bytes. Small writes stay on the reading thread (the
//! hand-over would cost more than the copy) unless writes are queued: then they queue too,
//! so that writes always land in the order they came.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Writes at least this large go to the thread.
pub const HAND_OVER: usize = 128 << 10;
/// Queued writes (and spare buffers) at most: 16 MiB of 1 MiB requests.
const QUEUE: usize = 16;

/// Called with the outcome once the bytes are in the file.
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Job {
    file: Arc<File>,
    offset: u64,
    data: Vec<u8>,
    done: Done,
}

pub struct StageWriter {
    jobs: Option<Sender<Job>>,
    spare: Receiver<Vec<u8>>,
    /// Jobs queued and not yet answered.
    queued: Arc<AtomicUsize>,
}

impl StageWriter {
    /// Starts the thread; if it cannot start, writes happen on the caller's thread.
    pub fn start() -> StageWriter {
        let (jobs, queue) = bounded::<Job>(QUEUE);
        let (give_back, spare) = bounded::<Vec<u8>>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let finished = queued.clone();
        let started = std::thread::Builder::new()
            .name("stage-writer".into())
            .spawn(move || {
                for job in queue {
                    let result = job.file.write_all_at(&job.data, job.offset);
                    (job.done)(result);
                    finished.fetch_sub(1, Ordering::Release);
                    let _ = give_back.try_send(job.data);
                }
            });
        StageWriter {
            jobs: started.ok().map(|_| jobs),
            spare,
            queued,
        }
    }

    /// Writes `data` at `offset` of `file` and then calls `done`: on this thread for small
    /// writes with nothing queued, on the writer thread otherwise. Waits when the queue is
    /// full. Meant for one submitting thread (the FUSE reader).
    pub fn write(&self, file: Arc<File>, offset: u64, data: &[u8], done: Done) {
        let inline = data.len() < HAND_OVER && self.queued.load(Ordering::Acquire) == 0;
        let Some(jobs) = self.jobs.as_ref().filter(|_| !inline) else {
            return done(file.write_all_at(data, offset));
        };
        let mut buffer = self.spare.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(data);
        let job = Job {
            file,
            offset,
            data: buffer,
            done,
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(returned) = jobs.send(job) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let job = returned.into_inner();
            (job.done)(job.file.write_all_at(&job.data, job.offset));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn large_and_small_writes_land_in_order_and_are_answered_after() {
        let dir = std::env::temp_dir().join(format!("ibackup-writer-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stage");
        let file = Arc::new(File::create(&path).unwrap());
        let writer = StageWriter::start();
        let (answered, answers) = mpsc::channel();
        let big = HAND_OVER * 2;
        // Ten large writes, each overwritten in part by the next, then a small one.
        for i in 0..10u8 {
            let data = vec![i; big];
            let answered = answered.clone();
            let at = u64::from(i) * (big as u64 / 2);
            writer.write(
                file.clone(),
                at,
                &data,
                Box::new(move |r| answered.send((i, r.is_ok())).unwrap()),
            );
        }
        let tail = 11 * (big as u64 / 2);
        let answered_small = answered.clone();
        writer.write(
            file.clone(),
            tail,
            b"end",
            Box::new(move |r| answered_small.send((99, r.is_ok())).unwrap()),
        );
        drop(answered);
        let got: Vec<(u8, bool)> = answers.iter().take(11).collect();
        assert!(got.iter().all(|(_, ok)| *ok));
        let order: Vec<u8> = got.iter().map(|(i, _)| *i).collect();
        let mut expected: Vec<u8> = (0..10).collect();
        expected.push(99);
        assert_eq!(
            order, expected,
            "answered in order, the small one queued behind"
        );
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len() as u64, tail + 3);
        for i in 0..10u8 {
            // Each write's first half survives the next one's overlap.
            let at = usize::from(i) * big / 2;
            assert!(
                content[at..at + big / 2].iter().all(|b| *b == i),
                "write {i}"
            );
        }
        assert_eq!(&content[tail as usize..], b"end");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_is_reported() {
        let dir = std::env::temp_dir().join(format!("ibackup-writer-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stage");
        std::fs::write(&path, b"x").unwrap();
        // Opened read-only: every write fails with EBADF.
        let file = Arc::new(File::open(&path).unwrap());
        let writer = StageWriter::start();
        let (answered, answers) = mpsc::channel();
        writer.write(
            file,
            0,
            &vec![1u8; HAND_OVER],
            Box::new(move |r| {
                answered
                    .send(r.err().and_then(|e| e.raw_os_error()))
                    .unwrap()
            }),
        );
        assert_eq!(answers.recv().unwrap(), Some(libc::EBADF));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
