//! Compiles `passerelle/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and tonic stubs, plus the encoded file descriptor set used by gRPC reflection.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("passerelle");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(proto_dir.join("v1"))
        .context("reading proto/passerelle/v1")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    files.sort();

    let include = proto_dir.parent().context("proto dir has a parent")?;
    let fds = protox::compile(&files, [include]).context("compiling the .proto files")?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("passerelle_descriptor.bin"), prost::Message::encode_to_vec(&fds))
        .context("writing the file descriptor set")?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Element-count bounds checked before decoding (see `src/codec.rs`).
        .codec_path("crate::codec::BoundedCodec")
        .compile_fds(fds)
        .context("generating Rust code from the descriptors")?;
    Ok(())
}
