/// mimalloc instead of the system allocator: the per-call path allocates many short-lived
/// buffers from several threads, where glibc's malloc spent about a sixth of a WhoAmI call
/// (perf, docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    akig::cli::Cli::parse_args().run().await
}
