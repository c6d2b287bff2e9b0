//! apiconform: a thin binary over the library; see `apiconform --help`.

fn main() -> std::process::ExitCode {
    apiconform::cli::main()
}
