//! Threads that answer requests which wait on the network (cold reads), so the FUSE loop
//! threads go back to the kernel at once: a cold read of a large file never holds up a
//! `stat` or an `ls` of what is cached, however many read-ahead requests the kernel has
//! in flight.

use crossbeam_channel::{Receiver, Sender};

type Job = Box<dyn FnOnce() + Send>;

pub struct Workers {
    jobs: Sender<Job>,
}

impl Workers {
    /// `count` threads, ending once the pool is dropped and its queue is empty.
    pub fn start(count: usize) -> Self {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..count {
            let queue: Receiver<Job> = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fuse-worker-{i}"))
                .spawn(move || {
                    for job in queue {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a FUSE worker thread: {e}");
            }
        }
        Self { jobs }
    }

    /// Runs `job` on a worker (on this thread if no worker could be started).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(unsent) = self.jobs.send(Box::new(job)) {
            (unsent.into_inner())();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_waiting_job_does_not_hold_up_the_next() {
        let workers = Workers::start(2);
        let (release, blocked) = mpsc::channel::<()>();
        let (done, finished) = mpsc::channel();
        let first = done.clone();
        workers.run(move || {
            let _ = blocked.recv();
            first.send("slow").unwrap();
        });
        workers.run(move || done.send("quick").unwrap());
        assert_eq!(finished.recv_timeout(Duration::from_secs(10)), Ok("quick"));
        release.send(()).unwrap();
        assert_eq!(finished.recv_timeout(Duration::from_secs(10)), Ok("slow"));
    }
}
