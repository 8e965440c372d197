//! An external verifier: a command started once through `sh -c` and kept for the whole run, that
//! reads one JSON line `{"prompt","completion","answer"}` per completion on its stdin and prints
//! one number per line, the reward, on its stdout, in order.

use crate::error::{LlmError, Result};
use crate::task::Problem;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// A running reward command.
pub struct RewardCommand {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    timeout: Duration,
}

impl RewardCommand {
    /// Starts `command` through `sh -c`, its stderr passed through; `timeout` bounds the wait
    /// for each reward.
    pub fn start(command: &str, timeout: Duration) -> Result<Self> {
        let mut child = Command::new("sh")
            .args(["-c", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LlmError::Request(format!("cannot start the reward command `{command}`: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (send, lines) = mpsc::channel();
        // A reader thread, so that the command's output never blocks it while its input is
        // still being written, and so that a wait can time out.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(RewardCommand { command: command.to_string(), child, stdin, lines, timeout })
    }

    /// The rewards of `completions[i]` to `problems[i]`, in order.
    pub fn score(&mut self, problems: &[Problem], completions: &[String]) -> Result<Vec<f32>> {
        let mut input = String::new();
        for (problem, completion) in problems.iter().zip(completions) {
            let line = serde_json::json!({ "prompt": problem.prompt, "completion": completion, "answer": problem.answer });
            input.push_str(&line.to_string());
            input.push('\n');
        }
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(input.as_bytes()).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("its input is closed")),
        };
        if let Err(e) = written {
            return Err(self.failed(&format!("does not read its input ({e})")));
        }
        let mut rewards = Vec::with_capacity(completions.len());
        for index in 0..completions.len() {
            let line = match self.lines.recv_timeout(self.timeout) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => return Err(self.failed(&format!("output unreadable ({e})"))),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failed(&format!(
                        "gave no reward within {} s for completion {}",
                        self.timeout.as_secs_f64(),
                        index + 1
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failed(&format!("ended before the reward of completion {}", index + 1)))
                }
            };
            match line.trim().parse::<f32>() {
                Ok(r) if r.is_finite() => rewards.push(r),
                _ => return Err(self.failed(&format!("printed {:?} for completion {}, not a finite number", line, index + 1))),
            }
        }
        Ok(rewards)
    }

    /// `the reward command `CMD` why`, with its exit status when it ends within a second.
    fn failed(&mut self, why: &str) -> LlmError {
        let mut status = String::new();
        for _ in 0..100 {
            match self.child.try_wait() {
                Ok(Some(exit)) => {
                    status = format!(" ({exit})");
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        LlmError::Request(format!("the reward command `{}` {why}{status}", self.command))
    }
}

impl Drop for RewardCommand {
    /// Closes the command's input and ends it.
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(n: usize) -> (Vec<Problem>, Vec<String>) {
        let p = (0..n).map(|i| Problem { prompt: format!("{i}+1="), answer: (i + 1).to_string() }).collect();
        (p, (0..n).map(|i| (i + 1).to_string()).collect())
    }

    #[test]
    fn rewards_come_back_in_order_across_calls() {
        // Prints the length of each input line: rewards that differ per completion, in order.
        let mut verifier = RewardCommand::start("while IFS= read -r line; do echo ${#line}; done", Duration::from_secs(10)).unwrap();
        for n in [3, 200] {
            let (p, c) = problems(n);
            let want: Vec<f32> = p
                .iter()
                .zip(&c)
                .map(|(p, c)| serde_json::json!({ "prompt": p.prompt, "completion": c, "answer": p.answer }).to_string().len() as f32)
                .collect();
            assert_eq!(verifier.score(&p, &c).unwrap(), want);
        }
    }

    #[test]
    fn failures_name_the_command_and_what_went_wrong() {
        let (p, c) = problems(2);
        let cases = [
            ("exit 3", "exit status: 3"),
            ("read line; echo oops", "\"oops\" for completion 1, not a finite number"),
            ("read line; echo 1; read line; echo nan", "\"nan\" for completion 2"),
            ("sleep 5", "gave no reward within 0.3 s for completion 1"),
        ];
        for (command, want) in cases {
            let err = RewardCommand::start(command, Duration::from_millis(300)).unwrap().score(&p, &c).unwrap_err().to_string();
            assert!(err.contains(&format!("`{command}`")) && err.contains(want), "{command}: {err}");
        }
    }
}
