//! Generates Rust code and one descriptor set from `proto/` with a vendored
//! `protoc`, so building needs no system protobuf compiler.
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "branchscore/common/v1/common.proto",
    "branchscore/clients/v1/clients.proto",
    "branchscore/clients/v1/scoring.proto",
    "branchscore/pipeline/v1/pipeline.proto",
    "branchscore/feedback/v1/feedback.proto",
    "branchscore/kpi/v1/kpi.proto",
    "branchscore/reporting/v1/reporting.proto",
    "branchscore/gateway/v1/gateway.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: checkouts
    // at other paths sharing one target directory reuse the compiled script.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let includes = [root.clone(), protoc_bin_vendored::include_path()?];
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("branchscore_descriptor.bin"))
        .compile_with_config(config, &files, &includes)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
