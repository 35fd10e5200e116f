//! The README stays consistent with what is built from it: its usage block is
//! `examples/readme.rs` verbatim (the doctests run every Rust block; this keeps
//! the example program from drifting), and it links only files of this repository.

use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The first ```` ```rust ```` block after `heading`.
fn rust_block_after(text: &str, heading: &str) -> String {
    let at = text.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let start = at + text[at..].find("```rust\n").expect("no rust block") + "```rust\n".len();
    let len = text[start..].find("```\n").expect("unterminated block");
    text[start..start + len].to_string()
}

#[test]
fn usage_block_is_the_readme_example() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/readme.rs")).unwrap();
    let code: String =
        example.lines().skip_while(|l| l.starts_with("//!") || l.is_empty()).map(|l| format!("{l}\n")).collect();
    assert_eq!(rust_block_after(&readme(), "## Usage"), code, "README usage block and examples/readme.rs differ");
}

#[test]
fn cited_files_exist_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = readme();
    assert!(!text.contains("../"), "README points outside the repository");
    // Prose only: fenced blocks hold commands and output, not citations.
    let mut in_fence = false;
    let prose: String = text
        .lines()
        .filter(|l| {
            if l.starts_with("```") {
                in_fence = !in_fence;
                return false;
            }
            !in_fence
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // Every `path/like.md` or `dir/file.rs` in a code span must exist.
    let mut checked = 0;
    for span in prose.split('`').skip(1).step_by(2) {
        let looks_like_file =
            !span.contains(' ') && span.contains('/') && [".md", ".rs", ".sh"].iter().any(|ext| span.ends_with(ext));
        if looks_like_file {
            assert!(root.join(span).exists(), "README cites {span}, which is not in the repository");
            checked += 1;
        }
    }
    assert!(checked >= 3, "found only {checked} cited files; did the README format change?");
}
