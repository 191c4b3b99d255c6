#[tokio::main]
async fn main() -> std::process::ExitCode {
    akig::cli::Cli::parse_args().run().await
}
