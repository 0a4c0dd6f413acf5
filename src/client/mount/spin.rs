//! Busy-polling of `/dev/fuse` while requests keep coming.
//!
//! Every FUSE call is a round trip: the caller sleeps, the mount's reader thread wakes,
//! answers, and wakes the caller. When the reader thread sleeps in a blocking `read`, its CPU
//! goes idle, and waking an idle CPU costs 50 to 75 µs on a VM (and on laptops in deep sleep
//! states), against about 12 µs for a reader that is already running. The kernel asks the
//! file system for `security.capability` before every `write` call, so a 1 GiB copy in 64 KiB
//! pieces pays that wake 16,384 times.
//!
//! While requests come in quick succession, the reader's descriptor is switched to
//! non-blocking, so fuser's loop retries a `read` that finds nothing (it treats `EAGAIN` as
//! "try again") instead of sleeping. A watcher switches it back to blocking as soon as a
//! [`TICK`] passes without a request, so an idle mount costs no CPU. Reads do not count
//! (see `FuseFs::lock`): during a cold read the CPU is better left to fetching and
//! decrypting. The mode only changes how fast the next request is picked up, never what is
//! answered. With one CPU, spinning would take the CPU from the caller it waits for, so it is
//! off; `IBACKUP_FUSE_SPIN=0` turns it off everywhere.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often the watcher checks for requests while the reader polls.
const TICK: Duration = Duration::from_millis(1);
/// Requests per tick below which polling stops: a tick without any. A higher bar made
/// polling stop whenever the caller slowed down, which made the caller slower still.
const MIN_RATE: u64 = 1;
/// Two requests closer than this start polling: a caller that waits on each answer.
const START_GAP: Duration = Duration::from_micros(150);

/// Wakes the watcher when polling starts.
type Bell = Arc<(Mutex<bool>, Condvar)>;

pub struct Spinner {
    fd: OwnedFd,
    started: Instant,
    /// Nanoseconds after `started` of the last request.
    last: AtomicU64,
    /// Requests since the watcher last looked.
    recent: AtomicU64,
    spinning: AtomicBool,
    bell: Bell,
}

impl Spinner {
    /// A spinner for the FUSE device `fd` (a duplicate of the session's descriptor: they share
    /// the open file, and so its flags), with its watcher thread, which ends once the
    /// spinner is dropped. `None` on a single CPU or when turned off.
    pub fn start(fd: OwnedFd) -> Option<Arc<Spinner>> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 || std::env::var("IBACKUP_FUSE_SPIN").is_ok_and(|v| v == "0") {
            return None;
        }
        let bell: Bell = Arc::new((Mutex::new(false), Condvar::new()));
        let spinner = Arc::new(Spinner {
            fd,
            started: Instant::now(),
            last: AtomicU64::new(0),
            recent: AtomicU64::new(0),
            spinning: AtomicBool::new(false),
            bell: bell.clone(),
        });
        let weak = Arc::downgrade(&spinner);
        std::thread::Builder::new()
            .name("fuse-spin".into())
            .spawn(move || watch(&weak, &bell))
            .ok()?;
        Some(spinner)
    }

    /// Called at each request: keeps the reader polling, or starts it when this request
    /// follows the last one closely.
    pub fn request(&self) {
        let now = self.now();
        let last = self.last.swap(now, Ordering::Relaxed);
        self.recent.fetch_add(1, Ordering::Relaxed);
        // `last` is 0 before the first request.
        if self.spinning.load(Ordering::Acquire)
            || last == 0
            || now.saturating_sub(last) > START_GAP.as_nanos() as u64
        {
            return;
        }
        if !self.spinning.swap(true, Ordering::AcqRel) {
            self.set_nonblocking(true);
            let (rung, cvar) = &*self.bell;
            *rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cvar.notify_one();
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Polls until the request rate drops, then switches the reader back to blocking.
    fn spin_while_busy(&self) {
        self.recent.store(0, Ordering::Relaxed);
        loop {
            std::thread::sleep(TICK);
            if self.recent.swap(0, Ordering::Relaxed) < MIN_RATE {
                // Blocking first, then the flag: a request that slips in between sees the
                // flag still set and skips its switch, which costs one slow wake, never a
                // lost request.
                self.set_nonblocking(false);
                self.spinning.store(false, Ordering::Release);
                return;
            }
        }
    }

    fn set_nonblocking(&self, on: bool) {
        // An error leaves the mode as it was, which changes speed, not answers.
        let _ = rustix::io::ioctl_fionbio(&self.fd, on);
    }
}

fn watch(spinner: &Weak<Spinner>, bell: &Bell) {
    let (rung, cvar) = &**bell;
    loop {
        let started = {
            let mut rung = rung.lock().unwrap_or_else(|p| p.into_inner());
            if !*rung {
                rung = cvar
                    .wait_timeout(rung, Duration::from_secs(1))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::replace(&mut *rung, false)
        };
        let Some(spinner) = spinner.upgrade() else {
            return;
        };
        if started {
            spinner.spin_while_busy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{fcntl_getfl, OFlags};
    use std::os::unix::net::UnixStream;

    fn nonblocking(stream: &UnixStream) -> bool {
        fcntl_getfl(stream)
            .expect("flags of a socket")
            .contains(OFlags::NONBLOCK)
    }

    #[test]
    fn polls_while_requests_come_fast_and_blocks_when_they_stop() {
        let (reader, _writer) = UnixStream::pair().expect("socket pair");
        let fd = OwnedFd::from(reader.try_clone().expect("dup"));
        let Some(spinner) = Spinner::start(fd) else {
            eprintln!("one CPU here: spinning is off by design");
            return;
        };
        // One request after a pause does not start polling.
        spinner.request();
        assert!(!nonblocking(&reader));
        std::thread::sleep(Duration::from_millis(5));
        spinner.request();
        assert!(!nonblocking(&reader), "a lone request after a pause");
        // Two in quick succession do, and a steady stream keeps it on.
        spinner.request();
        assert!(nonblocking(&reader), "two close requests start polling");
        // On a loaded machine this thread may sleep past a tick, and the watcher rightly
        // stops polling until the next two close requests: most of the stream polls.
        let until = Instant::now() + Duration::from_millis(20);
        let (mut samples, mut polling) = (0u32, 0u32);
        while Instant::now() < until {
            spinner.request();
            samples += 1;
            polling += u32::from(nonblocking(&reader));
        }
        assert!(
            polling * 2 >= samples,
            "a fast stream keeps polling: {polling} of {samples} samples"
        );
        // Silence ends it within a few ticks (allowing for a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(2);
        while nonblocking(&reader) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!nonblocking(&reader), "quiet switches back to blocking");
        // The watcher ends with the spinner; the descriptor is closed then.
        let weak = Arc::downgrade(&spinner);
        drop(spinner);
        assert!(weak.upgrade().is_none());
    }
}
