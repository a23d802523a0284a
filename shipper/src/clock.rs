//! The agent's clock: `tokio::time`'s, so that a test can pause it and move it on
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`), read as the std instants
//! the core state types take as `now`. Unpaused, it is the monotonic clock itself.

/// Now, on the agent's clock.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_moves_only_when_advanced() {
        let t0 = super::now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(super::now(), t0, "real time passing does not move a paused clock");
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(super::now() - t0, Duration::from_secs(7));
    }
}
