//! Checkpoints: safetensors weights + JSON metadata, every file written atomically.
//!
//! A run directory holds
//! * [`MODEL_FILE`] `model.safetensors`: the weights used for sampling (the EMA weights when EMA
//!   is on) in f32 under PyTorch `nn.Sequential` names — layer k of the [`Mlp`] is
//!   `"{2k}.weight"` of shape `(d_out, d_in)` and `"{2k}.bias"` of shape `(d_out,)` — so
//!   `torch.nn.Sequential(Linear, SiLU, …).load_state_dict(safetensors.torch.load_file(…))`
//!   reads it as is;
//! * [`STATE_FILE`] `train_state.safetensors`: everything an exact resume needs — raw weights,
//!   EMA weights and optimiser moments in the training dtype, and (in the safetensors header
//!   metadata) the [`RunMeta`] with step and RNG states; one file, so one atomic write;
//! * [`META_FILE`] `meta.json`: the [`RunMeta`] (format tag and version, architecture,
//!   objective and normalisation descriptions, step, seed, RNG states, training config).
//!
//! Every write goes to a temporary file in the same directory, is fsynced and renamed over the
//! destination, so a crash leaves either the old or the new file, never a torn one. Reading a
//! truncated, foreign or mismatched file is an [`Error::Checkpoint`] naming the file and the
//! problem, never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::field::mlp::Mlp;
use crate::field::network::{Architecture, Network};
pub use crate::fsutil::write_atomic;
pub use crate::state::{HostTensor, RngState, StateDict, StoredDType};
use crate::tensor::{DType, Device};
use crate::train::config::TrainConfig;

/// File of the sampling weights in a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File of the full training state in a run directory.
pub const STATE_FILE: &str = "train_state.safetensors";
/// File of the run's metadata in a run directory.
pub const META_FILE: &str = "meta.json";
/// Format tag of [`RunMeta`] and of the training-state file.
pub const FORMAT: &str = "scoreflow-run";
/// Current format version; files with a larger version are refused.
pub const FORMAT_VERSION: u32 = 1;
/// Safetensors header key under which the training-state file embeds its [`RunMeta`].
const META_KEY: &str = "scoreflow.meta";

/// `meta.json`: what a run directory holds and how to continue it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// Architecture of the network in `model.safetensors` (a bare MLP configuration in runs
    /// written before architectures were tagged).
    pub model: Architecture,
    /// Objective and probability path, described by the caller (e.g. `{"name": "cfm", "path": "cond-ot"}`).
    #[serde(default)]
    pub objective: serde_json::Value,
    /// Data normalisation, described by the caller (e.g. per-dimension mean and scale).
    #[serde(default)]
    pub normalization: serde_json::Value,
    /// Optimiser steps completed.
    pub step: usize,
    /// Training seed.
    pub seed: u64,
    /// True when `model.safetensors` holds EMA weights.
    #[serde(default)]
    pub ema: bool,
    /// Dtype training ran in.
    pub dtype: StoredDType,
    /// Name of the step engine that trained the weights ("burn", …).
    #[serde(default)]
    pub engine: String,
    /// RNG states by role ("data", "noise") after `step` steps.
    #[serde(default)]
    pub rng: BTreeMap<String, RngState>,
    /// The training configuration (absent for imported weights).
    #[serde(default)]
    pub train: Option<TrainConfig>,
}

impl RunMeta {
    /// Metadata for weights of architecture `model` with nothing trained yet.
    pub fn new(model: Architecture) -> Self {
        Self {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            model,
            objective: serde_json::Value::Null,
            normalization: serde_json::Value::Null,
            step: 0,
            seed: 0,
            ema: false,
            dtype: StoredDType::F32,
            engine: String::new(),
            rng: BTreeMap::new(),
            train: None,
        }
    }

    /// Pretty JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode metadata: {e}")))
    }

    /// Parses JSON text, checking the format tag and version first; `source` names it in errors.
    pub fn from_json(text: &str, source: &Path) -> Result<Self> {
        let err = |msg: String| Error::Checkpoint {
            path: source.to_path_buf(),
            msg,
        };
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| err(format!("not valid JSON (truncated or corrupt?): {e}")))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(err(format!("format is '{other}', expected '{FORMAT}'"))),
            None => {
                return Err(err(format!(
                    "no \"format\" field: not a {FORMAT} metadata file"
                )))
            }
        }
        match v.get("version").and_then(|f| f.as_u64()) {
            Some(n) if n <= FORMAT_VERSION as u64 => {}
            Some(n) => {
                return Err(err(format!(
                    "format version {n} is newer than this scoreflow understands ({FORMAT_VERSION})"
                )))
            }
            None => return Err(err("no numeric \"version\" field".into())),
        }
        serde_json::from_value(v).map_err(|e| err(format!("malformed metadata: {e}")))
    }
}

/// Writes `meta` as pretty JSON to `path`, atomically.
pub fn write_meta(path: &Path, meta: &RunMeta) -> Result<()> {
    write_atomic(path, meta.to_json()?.as_bytes())
}

/// Reads and validates a `meta.json`.
pub fn read_meta(path: &Path) -> Result<RunMeta> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    RunMeta::from_json(&text, path)
}

/// Saves a run directory `dir` (created if needed): `state` (when given, with `meta` embedded)
/// to [`STATE_FILE`], then `sampling` to [`MODEL_FILE`], then `meta` to [`META_FILE`]. Each file
/// is atomic and the training state, the one resume reads, is self-contained.
pub fn save_run(
    dir: &Path,
    meta: &RunMeta,
    sampling: &dyn Network,
    state: Option<&StateDict>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if sampling.architecture() != meta.model {
        return Err(Error::InvalidInput(
            "save_run: the model's architecture differs from meta.model".into(),
        ));
    }
    let json = meta.to_json()?;
    if let Some(state) = state {
        let mut state = state.clone();
        state.metadata.insert("format".into(), FORMAT.into());
        state.metadata.insert(META_KEY.into(), json.clone());
        state.write(&dir.join(STATE_FILE))?;
    }
    save_network(sampling, &dir.join(MODEL_FILE))?;
    write_atomic(&dir.join(META_FILE), json.as_bytes())
}

/// Writes `net`'s [`Network::state_dict`] (f32, PyTorch names) to `path`, atomically, with the
/// header metadata `format = pt` and the architecture's configuration as JSON under
/// `scoreflow.config` (an MLP's bare [`MlpConfig`](crate::field::mlp::MlpConfig), as
/// [`Mlp::save_safetensors`] writes it; the tagged [`Architecture`] otherwise).
pub fn save_network(net: &dyn Network, path: &Path) -> Result<()> {
    let mut sd = net.state_dict();
    let arch = net.architecture();
    let config = match &arch {
        Architecture::Mlp(c) => serde_json::to_string(c),
        other => serde_json::to_string(other),
    }
    .map_err(|e| Error::InvalidInput(e.to_string()))?;
    sd.metadata.insert("format".into(), "pt".into());
    sd.metadata.insert("scoreflow.config".into(), config);
    sd.write(path)
}

/// Loads the sampling network of a run directory: its [`RunMeta`] and `model.safetensors` as an
/// [`Mlp`] on `device` in `dtype`.
pub fn load_run(dir: &Path, device: &Device, dtype: DType) -> Result<(RunMeta, Mlp)> {
    let meta = read_meta(&dir.join(META_FILE))?;
    let config = meta.model.as_mlp().ok_or_else(|| Error::Checkpoint {
        path: dir.join(META_FILE),
        msg: format!("the network is not an MLP ({})", meta.model.describe()),
    })?;
    let mlp = Mlp::load_safetensors(&dir.join(MODEL_FILE), config, device, dtype)?;
    Ok((meta, mlp))
}

/// Loads the training state of a run directory with the [`RunMeta`] embedded in it.
pub fn load_train_state(dir: &Path) -> Result<(RunMeta, StateDict)> {
    let path = dir.join(STATE_FILE);
    let state = StateDict::read(&path)?;
    let json = state.metadata.get(META_KEY).ok_or_else(|| {
        state.error(format!(
            "no '{META_KEY}' header entry: not a scoreflow training state"
        ))
    })?;
    let meta = RunMeta::from_json(json, &path)?;
    Ok((meta, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::mlp::MlpConfig;
    use crate::solve::{odeint, Method, OdeOptions};
    use crate::tensor::{cpu, matrix, rng, to_vec, vector};
    use rand::RngCore;
    use safetensors::tensor::{Dtype, TensorView};
    use std::path::PathBuf;

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
    }

    /// Reads a numeric CSV with a header row.
    fn csv(name: &str) -> (Vec<Vec<f64>>, usize) {
        let text = std::fs::read_to_string(data_dir().join(name)).unwrap();
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
            .collect();
        let n = rows.len();
        (rows, n)
    }

    fn w16() -> MlpConfig {
        MlpConfig::new(2, 16, 4)
    }

    /// PyTorch's outputs of the 3→16⁴→2 SiLU fixture are reproduced. PyTorch computed in f32 and
    /// printed 9 significant digits; one f32 forward of this size rounds at ~1e-7 relative per
    /// op over ~5 layers of 16-term sums, so agreement to 1e-5·(1 + |v|) is a 10× margin — in
    /// f32 and, with the same f32 weights, in f64.
    #[test]
    fn pytorch_fixture_outputs_are_reproduced() {
        let (rows, n) = csv("mlp_w16_io.csv");
        for dtype in [DType::F32, DType::F64] {
            let dev = cpu();
            let m =
                Mlp::load_safetensors(&data_dir().join("mlp_w16.safetensors"), &w16(), &dev, dtype)
                    .unwrap();
            let x = matrix(
                rows.iter().flat_map(|r| [r[0], r[1]]).collect(),
                n,
                2,
                &dev,
                dtype,
            );
            let t = vector(rows.iter().map(|r| r[2]).collect(), &dev, dtype);
            let v = to_vec(&m.forward(&x, &t));
            for (i, r) in rows.iter().enumerate() {
                for j in 0..2 {
                    let (a, b) = (v[2 * i + j], r[3 + j]);
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{dtype:?} row {i}: {a} vs PyTorch {b}"
                    );
                }
            }
        }
    }

    /// Ten Euler steps h = 0.1 from t = 0 match PyTorch's trajectory end points (same 1e-5
    /// budget: each step adds h·v with v accurate to ~1e-7 relative, far inside it).
    #[test]
    fn pytorch_fixture_euler_trajectory_is_reproduced() {
        let (rows, n) = csv("mlp_w16_euler10.csv");
        let dev = cpu();
        let m = Mlp::load_safetensors(
            &data_dir().join("mlp_w16.safetensors"),
            &w16(),
            &dev,
            DType::F32,
        )
        .unwrap();
        let x0 = matrix(
            rows.iter().flat_map(|r| [r[0], r[1]]).collect(),
            n,
            2,
            &dev,
            DType::F32,
        );
        let sol = odeint(&m, x0, 0.0, 1.0, &OdeOptions::fixed(Method::Euler, 10)).unwrap();
        assert_eq!(sol.nfe, 10);
        let x1 = to_vec(&sol.x);
        for (i, r) in rows.iter().enumerate() {
            for j in 0..2 {
                let (a, b) = (x1[2 * i + j], r[2 + j]);
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "point {i}: {a} vs PyTorch {b}"
                );
            }
        }
    }

    /// Save → load reproduces the network exactly in f32 (the file is f32), and the PyTorch
    /// names and (d_out, d_in) shapes are what `nn.Sequential` expects.
    #[test]
    fn safetensors_round_trip_uses_pytorch_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let cfg = MlpConfig::new(2, 8, 2);
        let dev = cpu();
        let m = cfg.init(&dev, DType::F32, &mut rng(3));
        m.save_safetensors(&path).unwrap();
        let sd = StateDict::read(&path).unwrap();
        assert_eq!(sd.get("0.weight").unwrap().shape, vec![8, 3]);
        assert_eq!(sd.get("4.weight").unwrap().shape, vec![2, 8]);
        assert_eq!(sd.get("4.bias").unwrap().shape, vec![2]);
        assert_eq!(sd.tensors.len(), 6);
        // PyTorch weight[o, i] is burn weight[i, o].
        let burn_w = to_vec(&m.layers[0].weight.val());
        assert_eq!(sd.get("0.weight").unwrap().data[3 + 2], burn_w[2 * 8 + 1]);
        let back = Mlp::load_safetensors(&path, &cfg, &dev, DType::F32).unwrap();
        for (a, b) in m.layers.iter().zip(&back.layers) {
            assert_eq!(to_vec(&a.weight.val()), to_vec(&b.weight.val()));
            assert_eq!(
                to_vec(&a.bias.as_ref().unwrap().val()),
                to_vec(&b.bias.as_ref().unwrap().val())
            );
        }
    }

    fn expect_checkpoint_error(r: Result<Mlp>, needle: &str) {
        match r {
            Err(Error::Checkpoint { msg, .. }) => {
                assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'")
            }
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("loading succeeded; expected an error containing '{needle}'"),
        }
    }

    /// Truncated, foreign and mismatched files give `Error::Checkpoint` with a clear message.
    #[test]
    fn bad_weight_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let dev = cpu();
        let good = data_dir().join("mlp_w16.safetensors");
        let bytes = std::fs::read(&good).unwrap();
        let p = dir.path().join("bad.safetensors");
        // Truncated at several points: inside the length prefix, the header and the data.
        for cut in [4, 40, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            expect_checkpoint_error(
                Mlp::load_safetensors(&p, &w16(), &dev, DType::F32),
                "not a readable safetensors",
            );
        }
        // Foreign: not safetensors at all.
        std::fs::write(&p, b"{\"hello\": \"world\"}\n").unwrap();
        expect_checkpoint_error(
            Mlp::load_safetensors(&p, &w16(), &dev, DType::F32),
            "not a readable safetensors",
        );
        // Foreign: safetensors with other names.
        let mut other = StateDict::new();
        other.insert(
            "encoder.weight",
            HostTensor {
                shape: vec![2, 2],
                data: vec![1.0; 4],
                dtype: StoredDType::F32,
            },
        );
        other.write(&p).unwrap();
        expect_checkpoint_error(
            Mlp::load_safetensors(&p, &w16(), &dev, DType::F32),
            "unexpected tensor 'encoder.weight'",
        );
        // Mismatched architecture: width 32 against the width-16 file; depth 3 (missing '8.*'
        // is not the issue — 6.weight has the wrong shape first) and depth 5 (missing tensors).
        expect_checkpoint_error(
            Mlp::load_safetensors(&good, &MlpConfig::new(2, 32, 4), &dev, DType::F32),
            "has shape [16, 3], expected [32, 3]",
        );
        expect_checkpoint_error(
            Mlp::load_safetensors(&good, &MlpConfig::new(2, 16, 3), &dev, DType::F32),
            "unexpected tensor '8.bias'",
        );
        expect_checkpoint_error(
            Mlp::load_safetensors(&good, &MlpConfig::new(2, 16, 5), &dev, DType::F32),
            "missing tensor '10.weight'",
        );
        expect_checkpoint_error(
            Mlp::load_safetensors(&good, &MlpConfig::new(3, 16, 4), &dev, DType::F32),
            "expected [16, 4]",
        );
        // Unsupported element type and non-finite weights.
        let mut sd = StateDict::read(&good).unwrap();
        sd.tensors.get_mut("2.bias").unwrap().data[0] = f64::NAN;
        sd.write(&p).unwrap();
        expect_checkpoint_error(
            Mlp::load_safetensors(&p, &w16(), &dev, DType::F32),
            "non-finite",
        );
        // Half precision is not supported (PyTorch can write it): a clear error, not garbage.
        let half = [0u8; 8];
        let view = TensorView::new(Dtype::F16, vec![4], &half).unwrap();
        std::fs::write(
            &p,
            safetensors::serialize([("0.bias", view)], None).unwrap(),
        )
        .unwrap();
        match StateDict::read(&p) {
            Err(Error::Checkpoint { msg, .. }) => {
                assert!(msg.contains("only F32 and F64"), "{msg}")
            }
            other => panic!("expected a checkpoint error, got {other:?}"),
        }
        // A missing file is an I/O error naming the path.
        match Mlp::load_safetensors(
            &dir.path().join("nope.safetensors"),
            &w16(),
            &dev,
            DType::F32,
        ) {
            Err(Error::Io { path, .. }) => assert!(path.ends_with("nope.safetensors")),
            other => panic!("expected an I/O error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn meta_validation_and_rng_state() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(META_FILE);
        let mut meta = RunMeta::new(Architecture::Mlp(MlpConfig::new(2, 8, 2)));
        meta.step = 17;
        meta.objective = serde_json::json!({"name": "cfm"});
        let mut r = rng(5);
        r.set_stream(3);
        for _ in 0..7 {
            r.next_u32(); // odd word position: not block- or u64-aligned
        }
        meta.rng.insert("data".into(), RngState::capture(&r));
        write_meta(&p, &meta).unwrap();
        let back = read_meta(&p).unwrap();
        assert_eq!(back, meta);
        let mut restored = back.rng["data"].restore().unwrap();
        let expect: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        let got: Vec<u64> = (0..5).map(|_| restored.next_u64()).collect();
        assert_eq!(got, expect);

        let check = |text: &str, needle: &str| match RunMeta::from_json(text, &p) {
            Err(Error::Checkpoint { msg, .. }) => {
                assert!(msg.contains(needle), "'{msg}' lacks '{needle}'")
            }
            other => panic!("expected a checkpoint error, got {other:?}"),
        };
        let json = meta.to_json().unwrap();
        check(&json[..json.len() / 2], "not valid JSON");
        check(
            "{\"format\": \"other-tool\", \"version\": 1}",
            "format is 'other-tool'",
        );
        check("[1, 2, 3]", "no \"format\" field");
        check(&json.replace("\"version\": 1", "\"version\": 99"), "newer");
        check(
            &json.replace("\"width\": 8", "\"width\": \"eight\""),
            "malformed metadata",
        );
    }

    /// Full-size interop with PyTorch (needs the reference venv and bench scripts, so it is
    /// ignored by default): `SCOREFLOW_REF_PYTHON=/tmp/refvenv/bin/python
    /// SCOREFLOW_BENCH=/path/to/shared/bench cargo test --release -p scoreflow --lib
    /// pytorch_full_size -- --ignored --nocapture`. (1) PyTorch trains the reference MLP
    /// 3 → 512⁴ → 2 for 50 steps and saves safetensors; Rust loads it and both evaluate 256
    /// points. (2) Rust saves its own reference MLP; `reference_fm.py --load-safetensors` loads
    /// it (strict `load_state_dict`) and sampling runs; both evaluate the same points. f32
    /// sums of 512 terms differ by summation order at ~√512·2⁻²⁴ relative, so agreement to
    /// 1e-5·(1 + |v|) is expected; the largest deviation is printed.
    #[test]
    #[ignore]
    fn pytorch_full_size_round_trip() {
        use std::process::Command;
        let py = std::env::var("SCOREFLOW_REF_PYTHON")
            .unwrap_or_else(|_| "/tmp/refvenv/bin/python".into());
        let bench = PathBuf::from(
            std::env::var("SCOREFLOW_BENCH").expect("set SCOREFLOW_BENCH to the bench directory"),
        );
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(&py).args(args).output().expect("run python");
            assert!(
                out.status.success(),
                "python {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let eval_py = format!(
            "import sys, torch; sys.path.insert(0, {bench:?}); import reference_fm as r\n\
             from safetensors.torch import load_file\n\
             net = r.make_mlp(); net.load_state_dict(load_file(sys.argv[1])); net.eval()\n\
             x = torch.tensor([[float(v) for v in l.split(',')] for l in open(sys.argv[2]).read().split()])\n\
             with torch.no_grad(): y = net(x)\n\
             print('\\n'.join(','.join(repr(float(v)) for v in row) for row in y))",
            bench = bench.display().to_string()
        );
        let mut r = rng(42);
        let inputs: Vec<[f64; 3]> = (0..256)
            .map(|_| {
                use rand::Rng as _;
                [
                    r.random_range(-3.0..3.0),
                    r.random_range(-3.0..3.0),
                    r.random_range(0.0..1.0),
                ]
            })
            .collect();
        // Inputs as f32 values so both sides see the same numbers.
        let inputs: Vec<[f64; 3]> = inputs.iter().map(|p| p.map(|v| v as f32 as f64)).collect();
        let inp = dir.path().join("inputs.csv");
        std::fs::write(
            &inp,
            inputs
                .iter()
                .map(|p| format!("{:?},{:?},{:?}\n", p[0] as f32, p[1] as f32, p[2] as f32))
                .collect::<String>(),
        )
        .unwrap();
        let compare = |weights: &Path, m: &Mlp, label: &str| {
            let out = run(&[
                "-c",
                &eval_py,
                weights.to_str().unwrap(),
                inp.to_str().unwrap(),
            ]);
            let torch: Vec<f64> = out
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let dev = cpu();
            let x = matrix(
                inputs.iter().flat_map(|p| [p[0], p[1]]).collect(),
                256,
                2,
                &dev,
                DType::F32,
            );
            let t = vector(inputs.iter().map(|p| p[2]).collect(), &dev, DType::F32);
            let ours = to_vec(&m.forward(&x, &t));
            assert_eq!(torch.len(), ours.len());
            let worst = ours
                .iter()
                .zip(&torch)
                .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                .fold(0.0, f64::max);
            eprintln!("{label}: max |ours − torch|/(1 + |torch|) = {worst:.2e} over 256 points");
            assert!(worst < 1e-5, "{label}: deviation {worst}");
        };
        // (1) PyTorch → Rust.
        let tw = dir.path().join("torch.safetensors");
        let script = bench.join("reference_fm.py");
        let samples = dir.path().join("s.csv");
        run(&[
            script.to_str().unwrap(),
            "--steps",
            "50",
            "--threads",
            "2",
            "--log-every",
            "0",
            "--n-samples",
            "10",
            "--save-safetensors",
            tw.to_str().unwrap(),
            "--out",
            samples.to_str().unwrap(),
        ]);
        let m = Mlp::load_safetensors(&tw, &MlpConfig::reference(), &cpu(), DType::F32).unwrap();
        compare(&tw, &m, "PyTorch-trained weights loaded in Rust");
        // (2) Rust → PyTorch.
        let rw = dir.path().join("rust.safetensors");
        let m = MlpConfig::reference().init(&cpu(), DType::F32, &mut rng(7));
        m.save_safetensors(&rw).unwrap();
        let log = run(&[
            script.to_str().unwrap(),
            "--load-safetensors",
            rw.to_str().unwrap(),
            "--n-samples",
            "10",
            "--out",
            samples.to_str().unwrap(),
        ]);
        assert!(log.contains("loaded"), "{log}");
        compare(&rw, &m, "Rust-saved weights loaded in PyTorch");
    }
}
