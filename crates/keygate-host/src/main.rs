use clap::Parser;

fn main() {
    let cli = keygate_host::up::Cli::parse();
    if let Err(e) = keygate_host::up::run(cli) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
