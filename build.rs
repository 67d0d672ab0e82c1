//! Embeds the demo scenarios (fixtures/sessions/<scenario>/) into the binary, so `ews-probe
//! demo` needs no files and no network; and says at build time when the schema test will be
//! skipped for want of EWS_SCHEMA_DIR.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sessions");
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-env-changed=EWS_SCHEMA_DIR");
    let mut code = String::from(
        "/// Built-in demo bundles: (scenario, [(file name, text)]).\npub static SCENARIOS: &[(&str, &[(&str, &str)])] = &[\n",
    );
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // Files of the scenario, and of its sub-directories one level down (a switch
        // scenario's `from/` and `to/` bundles), named relative to the scenario.
        let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            if p.is_file() {
                files.push((n, p));
            } else if p.is_dir() {
                println!("cargo:rerun-if-changed={}", p.display());
                for s in std::fs::read_dir(&p).unwrap().filter_map(Result::ok) {
                    if s.path().is_file() {
                        files.push((format!("{n}/{}", s.file_name().to_string_lossy()), s.path()));
                    }
                }
            }
        }
        files.sort();
        writeln!(code, "    ({name:?}, &[").unwrap();
        for (fname, f) in files {
            println!("cargo:rerun-if-changed={}", f.display());
            writeln!(
                code,
                "        ({fname:?}, include_str!({:?})),",
                f.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "    ]),").unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("demo_bundles.rs");
    std::fs::write(out, code).unwrap();
    // Debug builds are the test builds; a release install need not hear about test inputs.
    if std::env::var_os("EWS_SCHEMA_DIR").is_none()
        && std::env::var("PROFILE").as_deref() == Ok("debug")
    {
        println!(
            "cargo:warning=EWS_SCHEMA_DIR is not set: tests/schema.rs will not validate requests against Microsoft's EWS schema (.ci/run sets it)"
        );
    }
}
