//! `ibackup`: see `ibackup --help`.

fn main() -> std::process::ExitCode {
    ibackup::client::cli::main()
}
