use std::process::ExitCode;

fn main() -> ExitCode {
    monti::cli::main()
}
