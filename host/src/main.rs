//! The `cbx` command-line tool.

fn main() -> std::process::ExitCode {
    cbx::cli::main()
}
