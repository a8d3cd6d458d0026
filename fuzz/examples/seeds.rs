//! Writes the seed inputs into a corpus directory, one sub-directory per target:
//! `cargo run -p kinde-fuzz --example seeds -- fuzz/corpus`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".to_owned());
    let dir = std::path::Path::new(&dir);
    let seeds = kinde_fuzz::splice::seeds(kinde_fuzz::target());
    for (target, name, input) in &seeds {
        let sub = dir.join(target);
        let path = sub.join(format!("seed-{name}"));
        if let Err(e) = std::fs::create_dir_all(&sub).and_then(|()| std::fs::write(&path, input)) {
            eprintln!("seeds: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    println!("wrote {} seeds under {}", seeds.len(), dir.display());
}
