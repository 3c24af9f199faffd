//! One module per subcommand.

pub mod demo;
pub mod haproxy;
pub mod query;
pub mod render;
pub mod simulate;
pub mod vs;

/// Writes `text` to stdout; a closed pipe (`burst ... | head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
