//! Every access pattern is a GetItem, a Query, a BatchGetItem or a transaction on known
//! keys: no code path may issue a Scan, which reads the whole table.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_code_path_issues_a_scan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(files.len() > 20, "the workspace was found");
    // Built from parts so this file does not match itself.
    let calls = [format!(".{}()", "scan"), format!("{}Input", "Scan")];
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            calls.iter().any(|c| text.contains(c.as_str()))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "Scan used in {offenders:?}");
}
