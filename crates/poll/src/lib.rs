//! Waiting for something that cannot be awaited directly (a server that
//! starts answering, a counter that grows, a program that becomes ready):
//! [`poll_until`] asks again at a fixed interval until the answer is final
//! or a deadline passes. The one loop of that kind; readiness is asked for,
//! never assumed after a sleep. It runs on tokio's clock, so tests drive it
//! with paused time.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

/// Calls `attempt` until it breaks with a final value (`Ok`), or until
/// `within` has passed since the call (`Err` with the last attempt's
/// value, to say why it is not ready). `attempt` always runs at least once,
/// and the deadline is checked after each attempt, so one that started in
/// time is never cut short; between attempts it sleeps `every` (zero: the
/// next attempt starts at once, as for attempts that wait by themselves).
///
/// `attempt` is a closure returning a future (not an async closure: the
/// future of one of those borrows the closure, and a task holding it is then
/// not provably `Send`); what it must change it does in its body, before
/// the future.
pub async fn poll_until<T, P, F>(
    within: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> F,
) -> Result<T, P>
where
    F: Future<Output = ControlFlow<T, P>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            ControlFlow::Break(done) => return Ok(done),
            ControlFlow::Continue(why) if Instant::now() >= deadline => return Err(why),
            ControlFlow::Continue(_) => {}
        }
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_final_answer_ends_the_wait_at_once() {
        let t0 = Instant::now();
        let mut calls = 0;
        let r: Result<&str, ()> =
            poll_until(Duration::from_secs(10), Duration::from_secs(1), || {
                calls += 1;
                async { ControlFlow::Break("ready") }
            })
            .await;
        assert_eq!(r, Ok("ready"));
        assert_eq!(calls, 1);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_repeated_every_interval_until_one_is_final() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let r: Result<usize, usize> =
            poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
                at.push(t0.elapsed());
                let n = at.len();
                async move {
                    if n == 4 {
                        ControlFlow::Break(n)
                    } else {
                        ControlFlow::Continue(n)
                    }
                }
            })
            .await;
        assert_eq!(r, Ok(4));
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_deadline_the_last_reason_is_returned() {
        let t0 = Instant::now();
        let mut n = 0;
        let r: Result<(), String> =
            poll_until(Duration::from_secs(1), Duration::from_millis(300), || {
                n += 1;
                let why = format!("attempt {n} not ready");
                async move { ControlFlow::Continue(why) }
            })
            .await;
        // Attempts at 0, 300, 600, 900 and 1200 ms: the last one is the
        // first to end past the deadline.
        assert_eq!(r, Err("attempt 5 not ready".to_string()));
        assert_eq!(t0.elapsed(), Duration::from_millis(1200));
    }

    /// An attempt that takes 300 ms (of paused time) and is never final.
    fn slow_attempt(n: &mut u32) -> impl Future<Output = ControlFlow<(), u32>> + use<> {
        *n += 1;
        let n = *n;
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ControlFlow::Continue(n)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_waits_by_itself_is_not_cut_short_and_runs_at_least_once() {
        let t0 = Instant::now();
        let mut n = 0;
        let r = poll_until(Duration::ZERO, Duration::ZERO, || slow_attempt(&mut n)).await;
        assert_eq!(r, Err(1));
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_interval_attempts_follow_each_other_until_the_deadline() {
        let t0 = Instant::now();
        let mut n = 0;
        let r = poll_until(Duration::from_secs(1), Duration::ZERO, || {
            slow_attempt(&mut n)
        })
        .await;
        assert_eq!(r, Err(4));
        assert_eq!(t0.elapsed(), Duration::from_millis(1200));
    }
}
