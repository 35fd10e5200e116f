//! Rust-like rendering of a [`SchemaDoc`], printed side by side in type-mismatch
//! errors: the root first, then every struct and enum it reaches, each with its
//! archived size and alignment (layout drift shows even when names agree).
//!
//! ```text
//! struct Config { // 24 bytes, align 4
//!     port: u16,
//!     hosts: Vec<String>,
//! }
//! enum Event { // 12 bytes, align 4
//!     Tick { px: f64 },
//!     Halt(String),
//!     Idle = 7,
//! }
//! ```

use core::fmt::{self, Write as _};

use super::desc::{Field, Kind, SchemaDoc, TypeDesc, TypeIndex};

impl SchemaDoc {
    fn name(&self, i: TypeIndex) -> &str {
        self.types.get(i as usize).map_or("?", |t| t.name.as_str())
    }

    /// `(A, B)` for positional fields, `{ a: A, b: B }` for named ones.
    fn inline_fields(&self, f: &mut String, fs: &[Field], tuple: bool) -> fmt::Result {
        let items: Vec<String> = if tuple {
            fs.iter().map(|x| self.name(x.ty).to_owned()).collect()
        } else {
            fs.iter().map(|x| format!("{}: {}", x.name, self.name(x.ty))).collect()
        };
        if tuple {
            write!(f, "({})", items.join(", "))
        } else {
            write!(f, " {{ {} }}", items.join(", "))
        }
    }

    fn write_struct(&self, f: &mut String, t: &TypeDesc, fields: &[Field], tuple: bool) -> fmt::Result {
        let layout = format!("// {} bytes, align {}", t.size, t.align);
        if tuple || fields.is_empty() {
            write!(f, "struct {}", t.name)?;
            if tuple {
                self.inline_fields(f, fields, true)?;
            }
            return writeln!(f, "; {layout}");
        }
        writeln!(f, "struct {} {{ {layout}", t.name)?;
        for x in fields {
            writeln!(f, "    {}: {},", x.name, self.name(x.ty))?;
        }
        writeln!(f, "}}")
    }

    fn write_enum(&self, f: &mut String, t: &TypeDesc) -> fmt::Result {
        let Kind::Enum { variants, .. } = &t.kind else {
            return Ok(());
        };
        writeln!(f, "enum {} {{ // {} bytes, align {}", t.name, t.size, t.align)?;
        // Print `= n` only where the tag is not the implicit previous + 1.
        let mut implicit = 0u64;
        for v in variants {
            write!(f, "    {}", v.name)?;
            if !v.fields.is_empty() {
                self.inline_fields(f, &v.fields, v.tuple)?;
            }
            if v.discriminant != implicit {
                write!(f, " = {}", v.discriminant)?;
            }
            implicit = v.discriminant.wrapping_add(1);
            writeln!(f, ",")?;
        }
        writeln!(f, "}}")
    }
}

impl fmt::Display for SchemaDoc {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rendered into a String first so the output carries no trailing newline.
        let mut s = String::new();
        let f = &mut s;
        let root = self.root as usize;
        let order = core::iter::once(root).chain((0..self.types.len()).filter(|&i| i != root));
        for i in order {
            let Some(t) = self.types.get(i) else { continue };
            match &t.kind {
                Kind::Struct { fields, tuple } => self.write_struct(f, t, fields, *tuple)?,
                Kind::Enum { .. } => self.write_enum(f, t)?,
                // A non-user root (e.g. `Vec<Config>`) is named on its own line.
                _ if i == root => writeln!(f, "{} // {} bytes, align {}", t.name, t.size, t.align)?,
                _ => {}
            }
        }
        out.write_str(s.trim_end())
    }
}
