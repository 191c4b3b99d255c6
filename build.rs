//! Compiles `proto/` without a system `protoc`: `protox` parses the files in pure Rust and the
//! resulting descriptor set feeds both code generation and gRPC server reflection.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new("proto");
    let mut files = Vec::new();
    collect_protos(proto_root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds migrations/; rebuild when one is added.
    println!("cargo:rerun-if-changed=migrations");

    let descriptors = protox::compile(&files, [proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("akig_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        // RPCs whose feature has not landed answer UNIMPLEMENTED through the default stubs.
        .generate_default_stubs(true)
        // Smaller starting buffers per call (server/codec.rs).
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(descriptors)?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
