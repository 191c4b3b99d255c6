use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    akig::cli::Cli::parse().run().await
}
