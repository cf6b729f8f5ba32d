//! Bandwidth limiting: a token bucket per transfer. Tokens refill continuously at the
//! configured rate and the bucket holds only a tenth of a second's worth, so pacing is
//! smooth (no long burst then long sleep). Waiting is a timer sleep, never a spin.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct Throttle {
    /// Bytes per second.
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Throttle {
    /// `kb_per_sec` in the spec's unit (1 KB = 1000 bytes); 0 means unlimited (`None`).
    pub fn new(kb_per_sec: i64) -> Option<Self> {
        if kb_per_sec <= 0 {
            return None;
        }
        let rate = kb_per_sec as f64 * 1000.0;
        let capacity = (rate / 10.0).max(4096.0);
        Some(Self {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        })
    }

    /// Takes `bytes` tokens, sleeping for any deficit. Concurrent callers each pay their
    /// share, so the aggregate rate holds however many requests are in flight.
    pub async fn consume(&self, bytes: usize) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.capacity);
            *last = now;
            *tokens -= bytes as f64;
            if *tokens < 0.0 {
                Duration::from_secs_f64(-*tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let t = Throttle::new(100).unwrap(); // 100 KB/s
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            t.consume(5000).await; // 500 KB in all
        }
        let elapsed = start.elapsed().as_secs_f64();
        // The bucket starts full (10 KB): (500 - 10) / 100 = 4.9 s.
        assert!((4.8..5.0).contains(&elapsed), "{elapsed}");
    }

    #[test]
    fn zero_is_unlimited() {
        assert!(Throttle::new(0).is_none());
    }
}
