//! The qbackup binary: everything lives in the library; this only turns its
//! result into an exit code.

fn main() {
    let code = qbackup::cli::main_with_args(std::env::args_os().collect());
    std::process::exit(code);
}
