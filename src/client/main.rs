//! `ibackup`: see `ibackup --help`.

fn main() -> std::process::ExitCode {
    // Warnings on standard error (a background mount's go to its mount.log); RUST_LOG to
    // see more. fuser's own warnings (a call the mount leaves to the kernel, an unmount the
    // kernel already did) say nothing a user can act on.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,fuser=error".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    ibackup_client::cli::main()
}
