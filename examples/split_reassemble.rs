//! Split a file into encrypted, erasure-coded shares in a folder, and rebuild it from any `k`
//! of each chunk's `n` shares — the whole data path of shard, embedded in forty lines.
//!
//! ```text
//! split_reassemble split FILE DIR [K/N]   prints a recovery code; writes DIR/<share id> files
//!                                         and DIR/manifest (sealed)
//! split_reassemble join DIR OUT           reads the recovery code from SHARD_RECOVERY_CODE or
//!                                         stdin, rebuilds OUT from the shares still in DIR
//! split_reassemble                        self-test: split a random file 3-of-5, delete two
//!                                         shares of every chunk, rebuild, compare
//! ```
#![allow(clippy::print_stdout)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shard_crypto::{Label, VaultKey, VaultKeys, decode_recovery_code, encode_recovery_code};
use shard_proto::{Manifest, ShareId};
use shard_store::{
    ChunkDecoder, ChunkEncoder, ChunkSizes, KeyedFastCdc, Redundancy, ShareSource, Splitter,
    restore,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MANIFEST_AAD: &[u8] = b"split_reassemble manifest";

/// Shares as files named by their id in one folder.
struct Folder(PathBuf);

impl ShareSource for Folder {
    fn fetch(&mut self, id: &ShareId) -> shard_store::Result<Option<Vec<u8>>> {
        match fs::read(self.0.join(id.to_hex())) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Res<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn split(file: &Path, dir: &Path, redundancy: Redundancy, key: &VaultKey) -> Res<Manifest> {
    let keys = Arc::new(VaultKeys::derive(key));
    let chunker = KeyedFastCdc::new(
        keys.subkey(Label::ChunkerSeed).expose(),
        ChunkSizes::DEFAULT,
    )?;
    let encoder = ChunkEncoder::new(keys.clone(), redundancy)?;
    fs::create_dir_all(dir)?;
    let manifest = Splitter::new(File::open(file)?, chunker, encoder).run(|chunk| {
        for share in &chunk.shares {
            write_synced(&dir.join(share.id().to_hex()), &share.to_bytes())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    })?;
    let sealed = shard_crypto::seal(
        &keys.subkey(Label::Catalog),
        MANIFEST_AAD,
        &manifest.to_bytes(),
    )?;
    write_synced(&dir.join("manifest"), &sealed)?;
    Ok(manifest)
}

fn join(dir: &Path, out: &Path, key: &VaultKey) -> Res<()> {
    let keys = Arc::new(VaultKeys::derive(key));
    let sealed = fs::read(dir.join("manifest"))?;
    let manifest = Manifest::from_bytes(&shard_crypto::open(
        &keys.subkey(Label::Catalog),
        MANIFEST_AAD,
        &sealed,
    )?)?;
    let mut writer = BufWriter::new(File::create(out)?);
    let report = restore(
        &mut ChunkDecoder::new(keys),
        &manifest.chunks,
        &mut Folder(dir.to_path_buf()),
        &mut writer,
    )?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    println!(
        "restored {} bytes from {} chunks ({} shares missing, {} bad)",
        report.bytes,
        manifest.chunks.len(),
        report.missing.len(),
        report.bad.len()
    );
    Ok(())
}

fn self_test() -> Res<()> {
    let dir = std::env::temp_dir().join(format!("shard-split-{}", std::process::id()));
    let shares = dir.join("shares");
    fs::create_dir_all(&shares)?;
    let original = dir.join("original");
    let mut data = vec![0u8; 20 << 20];
    rand_core::Rng::fill_bytes(
        &mut <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(1),
        &mut data,
    );
    write_synced(&original, &data)?;

    let key = VaultKey::generate()?;
    let manifest = split(&original, &shares, Redundancy::new(3, 5)?, &key)?;
    println!(
        "split {} bytes into {} chunks of 5 shares (3 needed)",
        manifest.size,
        manifest.chunks.len()
    );
    for (i, chunk) in manifest.chunks.iter().enumerate() {
        // Lose two shares of every chunk, a different pair each time.
        for lost in [i % 5, (i + 2) % 5] {
            fs::remove_file(shares.join(chunk.shares[lost].to_hex()))?;
        }
    }
    let restored = dir.join("restored");
    join(&shares, &restored, &key)?;
    let same = fs::read(&restored)? == data;
    fs::remove_dir_all(&dir)?;
    if !same {
        return Err("restored bytes differ".into());
    }
    println!("restored file is identical to the original");
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => self_test(),
        ["split", file, dir, rest @ ..] => {
            let redundancy = match rest {
                [] => Redundancy::new(3, 5)?,
                [kn] => {
                    let (k, n) = kn.split_once('/').ok_or("expected K/N, e.g. 3/5")?;
                    Redundancy::new(k.parse()?, n.parse()?)?
                }
                _ => return Err("usage: split FILE DIR [K/N]".into()),
            };
            let key = VaultKey::generate()?;
            let manifest = split(Path::new(file), Path::new(dir), redundancy, &key)?;
            println!(
                "{} chunks, {} shares each ({redundancy})",
                manifest.chunks.len(),
                redundancy.n()
            );
            println!("recovery code (needed to rebuild; keep it secret):");
            println!("{}", encode_recovery_code(&key).as_str());
            Ok(())
        }
        ["join", dir, out] => {
            let code = match std::env::var("SHARD_RECOVERY_CODE") {
                Ok(code) => code,
                Err(_) => {
                    println!("recovery code:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line
                }
            };
            join(
                Path::new(dir),
                Path::new(out),
                &decode_recovery_code(&code)?,
            )
        }
        _ => Err("usage: split_reassemble [split FILE DIR [K/N] | join DIR OUT]".into()),
    }
}
